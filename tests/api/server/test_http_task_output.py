"""``GET /api/tasks/ID/output`` (issue 20, part 1): bounded pages of a task's kept output."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog
import trio
from _api_support import http_get, served

from api import ConfigError, ServerConfig
from api.server._routes import DEFAULT_OUTPUT_PAGE, MAX_OUTPUT_PAGE
from events import TaskFailed, TaskOutput

TIMEOUT = 10


@pytest.fixture(autouse=True)
def quiet_server_logs() -> Iterator[None]:
    # The server logs as it serves; captured, so no stream another test closed is used.
    with structlog.testing.capture_logs():
        yield


async def _output(port: int, query: str = "", task_id: str = "t1") -> Any:
    reply = await http_get(port, f"/api/tasks/{task_id}/output{query}")
    assert reply.status == 200, reply.body
    return reply.json()


async def test_pages_follow_line_numbers_and_end_with_the_seq_to_subscribe_from() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            stack.publisher.publish(TaskOutput(task_id="t1", line="one\ntwo\nthree", lines=3))
            stack.publisher.publish(TaskOutput(task_id="t1", stream="stderr", line="why"))
            stack.publisher.publish(TaskFailed(task_id="t1", error="exit code 1", exit_code=1))
            first = await _output(stack.port, "?since=0&limit=2")
            rest = await _output(stack.port, f"?since={first['lines'][-1]['n']}&limit=2")
            tail = await _output(stack.port, "?limit=1&stream=stderr")
            earlier = await _output(stack.port, "?before=3&limit=5")
            seq = stack.publisher.last_seq
    assert [(ln["n"], ln["text"]) for ln in first["lines"]] == [(1, "one"), (2, "two")]
    assert [(ln["n"], ln["stream"], ln["text"]) for ln in rest["lines"]] == [
        (3, "stdout", "three"),
        (4, "stderr", "why"),
    ]
    assert [ln["text"] for ln in tail["lines"]] == ["why"]
    assert [ln["text"] for ln in earlier["lines"]] == ["one", "two"]
    assert rest["state"] == "failed"
    assert (rest["first_kept"], rest["last"], rest["not_kept"]) == (1, 4, 0)
    assert rest["seq"] == seq
    assert set(rest["lines"][0]) == {"n", "seq", "time", "stream", "text", "truncated"}


async def test_what_was_cut_is_counted() -> None:
    with trio.fail_after(TIMEOUT):
        async with served(ServerConfig(port=0, output_lines_per_task=2)) as stack:
            stack.publisher.publish(TaskOutput(task_id="t1", line="a\nb\nc\nd\ne", lines=5))
            page = await _output(stack.port, "?since=0")
    assert [ln["text"] for ln in page["lines"]] == ["d", "e"]
    assert (page["first_kept"], page["not_kept"]) == (4, 3)


async def test_a_known_task_without_output_has_an_empty_page() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            page = await _output(stack.port)
    assert page["lines"] == []
    assert (page["last"], page["not_kept"]) == (0, 0)


async def test_unknown_task_is_404_naming_it() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            reply = await http_get(stack.port, "/api/tasks/nope/output")
            encoded = await http_get(stack.port, "/api/tasks/%E2%9C%93/output")
    assert reply.status == 404
    assert b"unknown task 'nope'" in reply.body
    assert encoded.status == 404
    assert "unknown task '\u2713'".encode() in encoded.body


async def test_percent_encoded_task_ids_are_decoded() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            stack.publisher.publish(TaskOutput(task_id="a b", line="spaced"))
            stack.publisher.publish(TaskOutput(task_id="dir/x", line="slashed"))
            page = await _output(stack.port, task_id="a%20b")
            slashed = await _output(stack.port, task_id="dir%2Fx")
            two_segments = await http_get(stack.port, "/api/tasks/dir/x/output")
    assert page["task_id"] == "a b"
    assert [ln["text"] for ln in page["lines"]] == ["spaced"]
    assert [ln["text"] for ln in slashed["lines"]] == ["slashed"]
    assert two_segments.status == 404


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("?limit=0", f"limit: expected an integer from 1 to {MAX_OUTPUT_PAGE}, got '0'"),
        ("?limit=1001", f"limit: expected an integer from 1 to {MAX_OUTPUT_PAGE}, got '1001'"),
        ("?limit=x", "limit: expected an integer from 1 to"),
        ("?since=-1", "since: expected a line number (an 'n' of an earlier answer), got '-1'"),
        ("?since=abc", "since: expected a line number"),
        ("?since=" + "9" * 40, "since: expected a line number"),
        ("?before=1.5", "before: expected a line number"),
        ("?since=1&before=2", "since and before: give one of them, not both"),
        ("?stream=both", "stream: expected one of stdout, stderr, got 'both'"),
    ],
)
async def test_bad_parameters_are_400_naming_them(query: str, complaint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            reply = await http_get(stack.port, f"/api/tasks/t1/output{query}")
    assert reply.status == 400
    assert complaint in reply.body.decode()


async def test_a_page_is_bounded_by_default() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            for n in range(DEFAULT_OUTPUT_PAGE + 50):
                stack.publisher.publish(TaskOutput(task_id="t1", line=str(n)))
            page = await _output(stack.port, "?since=0")
    assert len(page["lines"]) == DEFAULT_OUTPUT_PAGE


async def test_access_says_the_role() -> None:
    config = ServerConfig(port=0, auth_tokens=("op",), viewer_tokens=("view",))
    with trio.fail_after(TIMEOUT):
        async with served(config) as stack:
            viewer = await http_get(stack.port, "/api/access?token=view")
            operator = await http_get(
                stack.port, "/api/access", headers={"Authorization": "Bearer op"}
            )
            nobody = await http_get(stack.port, "/api/access")
    assert viewer.json() == {"role": "viewer", "commands": False}
    assert operator.json() == {"role": "operator", "commands": True}
    assert nobody.status == 401


async def test_access_without_an_executor_has_no_commands() -> None:
    with trio.fail_after(TIMEOUT):
        async with served(with_executor=False) as stack:
            reply = await http_get(stack.port, "/api/access")
    assert reply.json() == {"role": "operator", "commands": False}


@pytest.mark.parametrize("field", ["output_lines_per_task", "output_max_chars"])
@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_output_bounds_must_be_positive_ints(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be an int >= 1"):
        ServerConfig(**{field: value})  # type: ignore[arg-type]
