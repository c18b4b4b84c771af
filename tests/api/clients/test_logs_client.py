"""``runcast logs`` against a server (issue 20, part 1): kept lines, --tail, --follow, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
import trio
from _api_support import served

from api import ServerConfig
from api.clients import AuthRefusedError, ErrorReplyError
from api.clients._logs import OUTPUT_PAGE, LogLine, LogsRequest, read_logs
from events import OutputStream, TaskCompleted, TaskOutput, TaskRetrying, TaskStarted

TIMEOUT = 10


@pytest.fixture(autouse=True)
def quiet_server_logs() -> Iterator[None]:
    # The server logs as it serves; captured, so no stream another test closed is used.
    with structlog.testing.capture_logs():
        yield


def _ws(port: int) -> str:
    return f"ws://127.0.0.1:{port}/ws"


async def _read(port: int, request: LogsRequest) -> tuple[list[LogLine], list[str]]:
    lines: list[LogLine] = []
    notes: list[str] = []
    await read_logs(_ws(port), request, lines.append, notes.append)
    return lines, notes


async def test_kept_lines_in_order_across_pages() -> None:
    config = ServerConfig(port=0, output_lines_per_task=2 * OUTPUT_PAGE)
    with trio.fail_after(TIMEOUT):
        async with served(config) as stack:
            for n in range(OUTPUT_PAGE + 5):
                stream: OutputStream = "stderr" if n % 2 else "stdout"
                stack.publisher.publish(TaskOutput(task_id="t1", stream=stream, line=f"{n}"))
            lines, notes = await _read(stack.port, LogsRequest("t1"))
            stderr, _ = await _read(stack.port, LogsRequest("t1", stream="stderr"))
    assert [line.text for line in lines] == [str(n) for n in range(OUTPUT_PAGE + 5)]
    assert [line.text for line in stderr] == [str(n) for n in range(1, OUTPUT_PAGE + 5, 2)]
    assert notes == []


async def test_tail_and_what_was_not_kept() -> None:
    config = ServerConfig(port=0, output_lines_per_task=4)
    with trio.fail_after(TIMEOUT):
        async with served(config) as stack:
            stack.publisher.publish(TaskOutput(task_id="t1", line="a\nb\nc\nd\ne\nf", lines=6))
            every, notes = await _read(stack.port, LogsRequest("t1"))
            tail, tail_notes = await _read(stack.port, LogsRequest("t1", tail=2))
            more, more_notes = await _read(stack.port, LogsRequest("t1", tail=10))
    assert [line.text for line in every] == ["c", "d", "e", "f"]
    assert notes == ["2 earlier lines not kept"]
    assert [line.text for line in tail] == ["e", "f"]
    assert tail_notes == []
    assert [line.text for line in more] == ["c", "d", "e", "f"]
    assert more_notes == ["2 earlier lines not kept"]


async def test_follow_prints_live_lines_until_the_task_ends() -> None:
    lines: list[LogLine] = []
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            publish = stack.publisher.publish
            publish(TaskStarted(task_id="t1", name="t1"))
            publish(TaskOutput(task_id="t1", line="before"))
            async with trio.open_nursery() as nursery:
                done = trio.Event()
                subscribed = trio.Event()

                async def follow() -> None:
                    await read_logs(
                        _ws(stack.port),
                        LogsRequest("t1", follow=True),
                        lines.append,
                        print,
                        subscribed.set,
                    )
                    done.set()

                nursery.start_soon(follow)
                await subscribed.wait()
                publish(TaskOutput(task_id="t1", stream="stderr", line="live 1\nlive 2", lines=2))
                publish(TaskOutput(task_id="t2", line="another task"))
                publish(TaskRetrying(task_id="t1", attempt=1))
                publish(TaskOutput(task_id="t1", line="second attempt"))
                publish(TaskCompleted(task_id="t1", attempt=2))
                await done.wait()
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", "before"),
        ("stderr", "live 1"),
        ("stderr", "live 2"),
        ("stdout", "second attempt"),
    ]


async def test_follow_of_an_ended_task_stops_after_its_kept_lines() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            stack.publisher.publish(TaskOutput(task_id="t1", line="done"))
            stack.publisher.publish(TaskCompleted(task_id="t1"))
            lines, _ = await _read(stack.port, LogsRequest("t1", follow=True))
    assert [line.text for line in lines] == ["done"]


async def test_unknown_task_is_an_error_naming_it() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            with pytest.raises(ErrorReplyError, match="unknown task 'nope'") as caught:
                await _read(stack.port, LogsRequest("nope"))
    assert caught.value.exit_code == 1


async def test_a_wrong_token_is_refused() -> None:
    config = ServerConfig(port=0, auth_tokens=("op",))
    with trio.fail_after(TIMEOUT):
        async with served(config) as stack:
            with pytest.raises(AuthRefusedError, match="401"):
                await _read(stack.port, LogsRequest("t1", token="wrong"))


async def test_a_viewer_may_read_logs() -> None:
    config = ServerConfig(port=0, auth_tokens=("op",), viewer_tokens=("view",))
    with trio.fail_after(TIMEOUT):
        async with served(config) as stack:
            stack.publisher.publish(TaskOutput(task_id="t1", line="visible"))
            stack.publisher.publish(TaskCompleted(task_id="t1"))
            lines, _ = await _read(stack.port, LogsRequest("t1", token="view", follow=True))
    assert [line.text for line in lines] == ["visible"]
