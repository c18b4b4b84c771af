"""``runcast logs`` against a server: a task's kept output, then (``follow``) its live output.

The kept lines come a page at a time from ``GET /api/tasks/ID/output``; the last
page's ``seq`` is where a subscription to the task picks up (``since``), so with
``follow`` nothing is missed or shown twice, and the task's end ends the stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

import attrs
import h11
import trio

from ._connection import (
    _describe,
    _http_get,
    _open_stream,
    check_url,
    http_url,
    open_client,
)
from ._exceptions import (
    AuthRefusedError,
    ErrorReplyError,
    ProtocolError,
    ServerUnreachableError,
)

#: Lines asked for per page (the server's most).
OUTPUT_PAGE: Final = 1000
END_EVENTS: Final = frozenset({"task_completed", "task_failed", "task_cancelled"})
END_STATES: Final = frozenset({"completed", "failed", "cancelled"})


@attrs.frozen
class LogLine:
    """One output line of a task, from a page or a live event."""

    time: str
    stream: str
    text: str
    truncated: bool = False


Emit = Callable[[LogLine], None]
Note = Callable[[str], None]


@attrs.frozen
class LogsRequest:
    task_id: str
    token: str | None = None
    #: Only the newest N kept lines (None: every kept line).
    tail: int | None = None
    stream: str | None = None
    follow: bool = False


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    # Error bodies read "404 Not Found: <why>": the why is what the user needs.
    _, _, why = text.partition(": ")
    return why or text


async def fetch_output_page(url: str, task_id: str, token: str | None, **query: Any) -> Any:
    """One page of ``GET /api/tasks/ID/output``; error answers raise naming the server's why."""
    check_url(url)
    params = {key: value for key, value in query.items() if value is not None}
    path = f"/api/tasks/{quote(task_id, safe='')}/output"
    if params:
        path += "?" + urlencode(params)
    full = http_url(url, path)
    parts = _url_parts(full)
    try:
        stream = await _open_stream(parts[0], parts[1], secure=parts[2])
    except OSError as exc:
        raise ServerUnreachableError(f"{full}: cannot connect ({_describe(exc)})") from exc
    async with stream:
        try:
            status, body = await _http_get(stream, parts[3], path, token)
        except (OSError, trio.BrokenResourceError) as exc:
            raise ServerUnreachableError(f"{full}: connection lost ({_describe(exc)})") from exc
        except h11.ProtocolError as exc:
            raise ProtocolError(f"{full}: malformed HTTP response ({exc})") from exc
    if status in (401, 403):
        raise AuthRefusedError(f"{full}: refused ({status} {_error_text(body)})")
    if status != 200:
        raise ErrorReplyError(f"task {task_id!r}: {_error_text(body)} (HTTP {status})")
    try:
        page = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"{full}: response is not JSON ({exc})") from exc
    if not isinstance(page, dict) or not isinstance(page.get("lines"), list):
        raise ProtocolError(f"{full}: the answer has no 'lines' list")
    return page


def _url_parts(url: str) -> tuple[str, int, bool, str]:
    """``(host, port, secure, authority)`` of an HTTP(S) URL."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    return parts.hostname or "", parts.port or (443 if secure else 80), secure, parts.netloc


def _line(row: Any) -> LogLine:
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise ProtocolError(f"an output line without text: {str(row)[:200]!r}")
    return LogLine(
        str(row.get("time", "")),
        str(row.get("stream", "stdout")),
        row["text"],
        bool(row.get("truncated")),
    )


def _number(page: dict[str, Any], key: str) -> int:
    value = page.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"the output page has no integer {key!r}")
    return value


async def _kept_from_start(url: str, request: LogsRequest, emit: Emit, note: Note) -> Any:
    """Every kept line, oldest first; the last page answered."""
    since = 0
    target: int | None = None
    while True:
        page = await fetch_output_page(
            url,
            request.task_id,
            request.token,
            since=since,
            limit=OUTPUT_PAGE,
            stream=request.stream,
        )
        first_kept = _number(page, "first_kept")
        if first_kept > since + 1:
            cut = first_kept - since - 1
            note(f"{cut:,} {'earlier ' if since == 0 else ''}lines not kept")
        if target is None:
            target = _number(page, "last")
        lines = page["lines"]
        for row in lines:
            emit(_line(row))
        if len(lines) < OUTPUT_PAGE:
            return page
        since = _number(lines[-1], "n")
        if since >= target and not request.follow:
            return page


async def _kept_tail(url: str, request: LogsRequest, tail: int, emit: Emit, note: Note) -> Any:
    """The newest ``tail`` kept lines, in order; the newest page answered."""
    pages: list[list[Any]] = []
    wanted = tail
    before: int | None = None
    newest: Any = None
    while wanted > 0:
        page = await fetch_output_page(
            url,
            request.task_id,
            request.token,
            before=before,
            limit=min(wanted, OUTPUT_PAGE),
            stream=request.stream,
        )
        newest = page if newest is None else newest
        lines = page["lines"]
        pages.append(lines)
        wanted -= len(lines)
        if not lines or _number(lines[0], "n") <= _number(page, "first_kept"):
            if wanted > 0 and _number(page, "not_kept"):
                note(f"{_number(page, 'not_kept'):,} earlier lines not kept")
            break
        before = _number(lines[0], "n")
    for lines in reversed(pages):
        for row in lines:
            emit(_line(row))
    return newest


async def follow_live(
    url: str,
    request: LogsRequest,
    since: int,
    emit: Emit,
    note: Note,
    following: Callable[[], object] = lambda: None,
) -> None:
    """The task's output events after ``since``, until the task ends; ``following``
    is called once subscribed."""
    async with open_client(url, token=request.token) as client:
        await client.subscribe(request.task_id, since=since)
        following()
        while True:
            frame = await client.receive()
            kind = frame["type"]
            if kind == "gap":
                missed = frame.get("missed")
                count = f"{missed:,} events" if isinstance(missed, int) else "events"
                note(
                    f"{count} of this task missed (seq {frame.get('first_seq')}-"
                    f"{frame.get('last_seq')}, {frame.get('reason')})"
                )
            elif kind == "error":
                raise ErrorReplyError(f"server error: {frame.get('error', '(no message)')}")
            elif kind == "event":
                event = frame.get("event")
                if event == "task_output":
                    _emit_event(frame, request.stream, emit)
                elif event in END_EVENTS:
                    return


def _emit_event(frame: dict[str, Any], stream: str | None, emit: Emit) -> None:
    data = frame.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("line"), str):
        raise ProtocolError(f"a task_output event without a line: {str(frame)[:200]!r}")
    line_stream = str(data.get("stream", "stdout"))
    if stream is not None and line_stream != stream:
        return
    time = str(frame.get("time", ""))
    truncated = bool(data.get("truncated"))
    for text in data["line"].split("\n"):
        emit(LogLine(time, line_stream, text, truncated))


async def read_logs(
    url: str,
    request: LogsRequest,
    emit: Emit,
    note: Note,
    following: Callable[[], object] = lambda: None,
) -> None:
    """Print (``emit``) the task's kept output, then with ``follow`` its live output
    (``following`` is called once it is subscribed to it)."""
    if request.tail is None:
        page = await _kept_from_start(url, request, emit, note)
    else:
        page = await _kept_tail(url, request, request.tail, emit, note)
    if not request.follow or page.get("state") in END_STATES:
        return
    await follow_live(url, request, _number(page, "seq"), emit, note, following)
