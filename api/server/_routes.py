"""The plain HTTP endpoints: what each answers, as bytes and a content type."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Final, get_args
from urllib.parse import unquote

import attrs
import trio

from broadcaster import RuncastMetrics, render_metrics
from events import MAX_TASK_ID, TASK_STATES, OutputStream, Publisher, format_time

from ._access import AccessPolicy, Role
from ._exceptions import HttpError
from ._http import RequestHead
from ._interfaces import ExecutorControls, ListedTask, SessionSource
from ._output_buffer import OutputBuffer, OutputLine
from ._pages import FAVICON, FAVICON_TYPE

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
#: ``/api/tasks`` rows per page: without ``limit=``, and at most.
DEFAULT_PAGE: Final = 500
MAX_PAGE: Final = 1000
#: Rows fetched and turned into JSON in one loop step: a page never holds the loop
#: long (bench/README.md §6, the ``readers`` benchmark).
PAGE_CHUNK: Final = 100
#: Pages built at once: readers past it wait their turn (not runnable), so each loop turn
#: holds at most this many page chunks, whatever the number of readers.
PAGE_BUILDERS: Final = 1
_CURSOR_DIGITS: Final = 19
#: ``/api/tasks/ID/output`` lines per page: without ``limit=``, and at most.
DEFAULT_OUTPUT_PAGE: Final = 200
MAX_OUTPUT_PAGE: Final = 1000
OUTPUT_STREAMS: Final[tuple[str, ...]] = get_args(OutputStream)
TASKS_PREFIX: Final = "/api/tasks/"
OUTPUT_SUFFIX: Final = "/output"

FALLBACK_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>runcast</title></head>
<body><h1>runcast</h1>
<p>The dashboard page is not installed. The server is up:</p>
<ul><li><a href="/api/session">/api/session</a> (the session now)</li>
<li><a href="/api/tasks">/api/tasks</a> (the tasks, a page at a time)</li>
<li><a href="/metrics">/metrics</a> (Prometheus)</li>
<li>WebSocket: <code>/ws</code></li></ul></body></html>
"""


@attrs.frozen
class Reply:
    body: bytes
    content_type: str
    status: int = 200


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json(value: object) -> Reply:
    return Reply(_dumps(value).encode(), JSON_TYPE)


def _time(moment: Any) -> str | None:
    return None if moment is None else format_time(moment)


def task_row(task: ListedTask) -> dict[str, object]:
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


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def page_limit(text: str | None) -> int:
    """``limit=``: rows per page, ``DEFAULT_PAGE`` when absent; 400 unless 1..``MAX_PAGE``."""
    if text is None:
        return DEFAULT_PAGE
    if not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= MAX_PAGE:
        raise HttpError(400, f"limit: expected an integer from 1 to {MAX_PAGE}, got {_show(text)}")
    return int(text)


def output_limit(text: str | None) -> int:
    """``limit=`` of an output page: ``DEFAULT_OUTPUT_PAGE`` when absent."""
    if text is None:
        return DEFAULT_OUTPUT_PAGE
    if not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= MAX_OUTPUT_PAGE:
        raise HttpError(
            400, f"limit: expected an integer from 1 to {MAX_OUTPUT_PAGE}, got {_show(text)}"
        )
    return int(text)


def line_number(name: str, text: str | None) -> int | None:
    """``since=``/``before=``: a line number ``n`` of the task's output (None: absent)."""
    if text is None:
        return None
    if not text.isdigit() or len(text) > _CURSOR_DIGITS:
        raise HttpError(
            400, f"{name}: expected a line number (an 'n' of an earlier answer), got {_show(text)}"
        )
    return int(text)


def stream_filter(text: str | None) -> str | None:
    if text is None or text in OUTPUT_STREAMS:
        return text
    raise HttpError(400, f"stream: expected one of {', '.join(OUTPUT_STREAMS)}, got {_show(text)}")


def output_task_id(path: str) -> str:
    """The task id of ``/api/tasks/ID/output``, percent-decoded."""
    segment = path[len(TASKS_PREFIX) : -len(OUTPUT_SUFFIX)]
    # One path segment: a task id holding "/" arrives as %2F.
    task_id = unquote(segment, errors="strict") if "/" not in segment else ""
    if not task_id or len(task_id) > MAX_TASK_ID:
        raise HttpError(404, f"no such path {_show(path)}")
    return task_id


def output_line(line: OutputLine) -> dict[str, object]:
    return {
        "n": line.number,
        "seq": line.seq,
        "time": format_time(line.time),
        "stream": line.stream,
        "text": line.text,
        "truncated": line.truncated,
    }


def page_after(text: str | None) -> int | None:
    """``after=``: the ``next`` of a previous page (None: from the first task)."""
    if text is None:
        return None
    if not text.isdigit() or len(text) > _CURSOR_DIGITS:
        raise HttpError(
            400, f"after: expected the 'next' value of a previous page, got {_show(text)}"
        )
    return int(text)


def state_filter(text: str | None) -> frozenset[str] | None:
    """``state=``: comma-separated task states (None: every state)."""
    if text is None:
        return None
    states = frozenset(part.strip() for part in text.split(","))
    unknown = sorted(states.difference(TASK_STATES))
    if unknown:
        raise HttpError(
            400,
            f"state: unknown state {_show(unknown[0])} (expected one or more of "
            f"{', '.join(TASK_STATES)}, comma-separated)",
        )
    return states


async def page_body(
    executor: ExecutorControls, *, after: int | None, limit: int, states: Collection[str] | None
) -> bytes:
    """``{"tasks": [...], "next": CURSOR}``: up to ``limit`` tasks after ``after``,
    fetched and encoded ``PAGE_CHUNK`` rows per loop step."""
    parts: list[str] = []
    cursor = after
    remaining = limit
    while remaining:
        await trio.lowlevel.checkpoint()
        chunk = executor.task_page(after=cursor, limit=min(remaining, PAGE_CHUNK), states=states)
        if not chunk.tasks:
            cursor = None
            break
        parts.append(_dumps([task_row(task) for task in chunk.tasks])[1:-1])
        remaining -= len(chunk.tasks)
        cursor = chunk.next_after
        if cursor is None:
            break
    shown = None if cursor is None else str(cursor)
    return f'{{"tasks":[{",".join(parts)}],"next":{_dumps(shown)}}}'.encode()


Handler = Callable[[RequestHead], Awaitable[Reply]]


@attrs.define(eq=False)
class Endpoints:
    """The GET endpoints, bound to what they report on."""

    publisher: Publisher
    session_source: SessionSource
    executor: ExecutorControls | None
    metrics: RuncastMetrics | None
    static_dir: Path
    output: OutputBuffer = attrs.field(factory=OutputBuffer)
    policy: AccessPolicy | None = None
    _page_builders: trio.Semaphore = attrs.field(
        factory=lambda: trio.Semaphore(PAGE_BUILDERS), init=False
    )

    def table(self) -> Mapping[str, Handler]:
        return {
            "/": self.index,
            "/healthz": self.healthz,
            "/metrics": self.prometheus,
            "/api/session": self.session,
            "/api/tasks": self.tasks,
            "/api/access": self.access,
            "/favicon.ico": self.favicon,
        }

    def find(self, path: str) -> Handler | None:
        if path.startswith("/static/"):
            return self.static
        if path.startswith(TASKS_PREFIX) and path.endswith(OUTPUT_SUFFIX):
            return self.task_output
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

    async def favicon(self, head: RequestHead) -> Reply:
        return Reply(FAVICON, FAVICON_TYPE)

    async def healthz(self, head: RequestHead) -> Reply:
        """200 while the loop answers; ``stale``: a cluster serve node's numbers may be
        behind (its Redis is out of reach, or it has not caught up since)."""
        if self.session_source.snapshot().stale:
            return _json({"status": "stale", "stale": True})
        return _json({"status": "ok", "stale": False})

    async def prometheus(self, head: RequestHead) -> Reply:
        if self.metrics is None:
            raise HttpError(404, "metrics are not enabled on this server")
        body, content_type = render_metrics(self.metrics.registry, head.headers.get("accept"))
        return Reply(body, content_type)

    async def session(self, head: RequestHead) -> Reply:
        data = self.publisher.codec.converter.unstructure(self.session_source.snapshot())
        del data["task_id"]
        return _json(data)

    async def tasks(self, head: RequestHead) -> Reply:
        """A page of tasks in submission order: ``?limit=&after=&state=``.

        The executor builds only the page's rows, a chunk per loop step, and
        one page is built at a time: readers cost the loop one chunk per turn,
        whatever their number and the number of tasks, where one answer of
        every task held it for a whole listing (bench/README.md §6).
        """
        limit = page_limit(head.query.get("limit"))
        after = page_after(head.query.get("after"))
        states = state_filter(head.query.get("state"))
        if self.executor is None:
            return _json({"tasks": [], "next": None})
        async with self._page_builders:
            body = await page_body(self.executor, after=after, limit=limit, states=states)
        return Reply(body, JSON_TYPE)

    async def access(self, head: RequestHead) -> Reply:
        """What the caller's token lets it do: the dashboard disables what it may not."""
        role = Role.OPERATOR
        if self.policy is not None:
            role = self.policy.authenticate(head.headers, head.query.get("token"))
        commands = role is Role.OPERATOR and self.executor is not None
        return _json({"role": role.value, "commands": commands})

    async def task_output(self, head: RequestHead) -> Reply:
        """A page of a task's kept output: ``?since=N`` (after line N, oldest first),
        ``?before=N`` or neither (the newest lines), ``&limit=&stream=``."""
        try:
            task_id = output_task_id(head.path)
        except UnicodeDecodeError:
            raise HttpError(404, f"no such path {_show(head.path)}") from None
        since = line_number("since", head.query.get("since"))
        before = line_number("before", head.query.get("before"))
        if since is not None and before is not None:
            raise HttpError(400, "since and before: give one of them, not both")
        limit = output_limit(head.query.get("limit"))
        stream = stream_filter(head.query.get("stream"))
        entry = self.output.get(task_id)
        known = self.executor.has_task(task_id) if self.executor is not None else False
        if entry is None and not known:
            raise HttpError(404, f"unknown task {task_id!r}")
        lines = (
            []
            if entry is None
            else entry.page(since=since, before=before, limit=limit, stream=stream)
        )
        return _json(
            {
                "task_id": task_id,
                "state": None if entry is None else entry.state,
                "lines": [output_line(line) for line in lines],
                "first_kept": 1 if entry is None else entry.first_kept,
                "last": 0 if entry is None else entry.seen,
                "not_kept": 0 if entry is None else entry.not_kept,
                # Subscribe to the task with this ``since`` for what comes after.
                "seq": self.publisher.last_seq,
            }
        )
