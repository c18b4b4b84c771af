"""The plain HTTP endpoints: what each answers, as bytes and a content type."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from broadcaster import RuncastMetrics, render_metrics
from events import Publisher, format_time

from ._exceptions import HttpError
from ._http import RequestHead
from ._interfaces import ExecutorControls, SessionSource, TaskRow

STATIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
JSON_TYPE = "application/json"
HTML_TYPE = CONTENT_TYPES[".html"]

FALLBACK_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>runcast</title></head>
<body><h1>runcast</h1>
<p>The dashboard page is not installed. The server is up:</p>
<ul><li><a href="/api/session">/api/session</a> (the session now)</li>
<li><a href="/api/tasks">/api/tasks</a> (every task)</li>
<li><a href="/metrics">/metrics</a> (Prometheus)</li>
<li>WebSocket: <code>/ws</code></li></ul></body></html>
"""


@attrs.frozen
class Reply:
    body: bytes
    content_type: str
    status: int = 200


def _json(value: object) -> Reply:
    return Reply(json.dumps(value, separators=(",", ":")).encode(), JSON_TYPE)


def _time(moment: Any) -> str | None:
    return None if moment is None else format_time(moment)


def task_row(task: TaskRow) -> dict[str, object]:
    return {
        "task_id": task.task_id,
        "name": task.name,
        "state": task.state,
        "attempts": task.attempts,
        "started_at": _time(task.started_at),
        "ended_at": _time(task.ended_at),
        "input_tokens": task.input_tokens,
        "output_tokens": task.output_tokens,
        "cache_read_tokens": task.cache_read_tokens,
        "cache_write_tokens": task.cache_write_tokens,
        "estimated_cost_usd": task.estimated_cost_usd,
        # Tokens of models with no known price: counted, but not in the cost.
        "unpriced_tokens": task.unpriced_tokens,
        "error": task.error,
        "exit_code": task.exit_code,
    }


Handler = Callable[[RequestHead], Awaitable[Reply]]


@attrs.define(eq=False)
class Endpoints:
    """The GET endpoints, bound to what they report on."""

    publisher: Publisher
    sessions: SessionSource
    executor: ExecutorControls | None
    metrics: RuncastMetrics | None
    static_dir: Path

    def table(self) -> Mapping[str, Handler]:
        return {
            "/": self.index,
            "/healthz": self.healthz,
            "/metrics": self.prometheus,
            "/api/session": self.session,
            "/api/tasks": self.tasks,
        }

    def find(self, path: str) -> Handler | None:
        if path.startswith("/static/"):
            return self.static
        return self.table().get(path)

    async def index(self, head: RequestHead) -> Reply:
        page = trio.Path(self.static_dir / "index.html")
        if await page.is_file():
            return Reply(await page.read_bytes(), HTML_TYPE)
        return Reply(FALLBACK_PAGE, HTML_TYPE)

    async def static(self, head: RequestHead) -> Reply:
        name = head.path.removeprefix("/static/")
        suffix = Path(name).suffix.lower()
        if not STATIC_NAME.fullmatch(name) or suffix not in CONTENT_TYPES:
            raise HttpError(404, f"no static file {head.path!r}")
        path = trio.Path(self.static_dir / name)
        if not await path.is_file():
            raise HttpError(404, f"no static file {head.path!r}")
        return Reply(await path.read_bytes(), CONTENT_TYPES[suffix])

    async def healthz(self, head: RequestHead) -> Reply:
        return _json({"status": "ok"})

    async def prometheus(self, head: RequestHead) -> Reply:
        if self.metrics is None:
            raise HttpError(404, "metrics are not enabled on this server")
        body, content_type = render_metrics(self.metrics.registry, head.headers.get("accept"))
        return Reply(body, content_type)

    async def session(self, head: RequestHead) -> Reply:
        data = self.publisher.codec.converter.unstructure(self.sessions.snapshot())
        del data["task_id"]
        return _json(data)

    async def tasks(self, head: RequestHead) -> Reply:
        rows = [] if self.executor is None else [task_row(t) for t in self.executor.tasks()]
        return _json({"tasks": rows})
