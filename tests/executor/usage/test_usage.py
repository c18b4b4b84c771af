"""Usage parsing from real-looking stdout transcripts of each supported tool/API."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from events import Published, Publisher, TaskOutput, TaskUsage
from executor import (
    CostCalculator,
    LineSplitter,
    TaskContext,
    TokenCounts,
    UsageParser,
    UsageRecord,
    open_executor,
)
from executor.process import LINES_PER_STEP, StdoutReader, pump_lines
from executor.usage import MAX_TRACKED_IDS


def line(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


def parse_all(lines: list[str]) -> tuple[list[UsageRecord], list[str]]:
    parser = UsageParser()
    records: list[UsageRecord] = []
    output: list[str] = []
    for text in lines:
        found = parser.parse(text)
        if found is None:
            output.append(text)
        else:
            records.extend(found)
    return records, output


def summed(records: list[UsageRecord]) -> TokenCounts:
    total = TokenCounts()
    for record in records:
        total += record.tokens
    return total


def claude_assistant(msg_id: str, block: dict[str, Any], usage: dict[str, Any]) -> str:
    return line(
        {
            "type": "assistant",
            "message": {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [block],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            },
            "parent_tool_use_id": None,
            "session_id": "9b3c0d7e-5d7c-4a61-9f0e-2c1f0e6b8a11",
        }
    )


TURN_1_USAGE = {
    "input_tokens": 4,
    "cache_creation_input_tokens": 5210,
    "cache_read_input_tokens": 12040,
    "cache_creation": {"ephemeral_5m_input_tokens": 5210, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 3,
    "service_tier": "standard",
}
TURN_2_USAGE = {
    "input_tokens": 7,
    "cache_creation_input_tokens": 310,
    "cache_read_input_tokens": 17250,
    "output_tokens": 120,
    "service_tier": "standard",
}

CLAUDE_CODE_TRANSCRIPT = [
    line(
        {
            "type": "system",
            "subtype": "init",
            "cwd": "/work/repo",
            "session_id": "9b3c0d7e-5d7c-4a61-9f0e-2c1f0e6b8a11",
            "tools": ["Bash", "Read", "Edit"],
            "model": "claude-sonnet-4-5-20250929",
            "permissionMode": "default",
        }
    ),
    # One assistant turn streamed as two content blocks: same id, same usage.
    claude_assistant("msg_01A", {"type": "text", "text": "Let me look."}, TURN_1_USAGE),
    claude_assistant(
        "msg_01A",
        {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "a.txt"}},
        TURN_1_USAGE,
    ),
    line(
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [{"tool_use_id": "toolu_01", "type": "tool_result", "content": "hello"}],
            },
            "session_id": "9b3c0d7e-5d7c-4a61-9f0e-2c1f0e6b8a11",
        }
    ),
    claude_assistant("msg_01B", {"type": "text", "text": "Summary: hello."}, TURN_2_USAGE),
]

CLAUDE_CODE_RESULT = line(
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 8123,
        "duration_api_ms": 7990,
        "num_turns": 2,
        "result": "Summary: hello.",
        "session_id": "9b3c0d7e-5d7c-4a61-9f0e-2c1f0e6b8a11",
        "total_cost_usd": 0.0421,
        "usage": {
            "input_tokens": 11,
            "cache_creation_input_tokens": 5520,
            "cache_read_input_tokens": 29290,
            "output_tokens": 131,
            "server_tool_use": {"web_search_requests": 0},
            "service_tier": "standard",
        },
        "modelUsage": {"claude-sonnet-4-5-20250929": {"inputTokens": 11, "costUSD": 0.0421}},
    }
)


def test_claude_code_turns_count_once_per_message_id() -> None:
    records, output = parse_all(CLAUDE_CODE_TRANSCRIPT)
    assert len(records) == 2  # msg_01A's second block adds nothing
    assert summed(records) == TokenCounts(input=11, output=123, cache_read=29290, cache_write=5520)
    assert {r.model for r in records} == {"claude-sonnet-4-5-20250929"}
    assert not any(r.replaces_provisional for r in records)
    # system init and the tool result are output, not usage.
    assert [json.loads(text)["type"] for text in output] == ["system", "user"]


def test_claude_code_result_carries_the_totals_and_reported_cost() -> None:
    records, _ = parse_all([*CLAUDE_CODE_TRANSCRIPT, CLAUDE_CODE_RESULT])
    final = records[-1]
    assert final.replaces_provisional
    assert final.tokens == TokenCounts(input=11, output=131, cache_read=29290, cache_write=5520)
    assert final.cost_usd == pytest.approx(0.0421)
    assert final.model == "claude-sonnet-4-5-20250929"


async def test_claude_code_result_replaces_the_provisional_sum() -> None:
    publisher = Publisher()
    usages: list[TaskUsage] = []

    def keep(item: Published) -> None:
        if isinstance(item.event, TaskUsage):
            usages.append(item.event)

    publisher.add_listener(keep)

    async def replay(ctx: TaskContext) -> None:
        parser = UsageParser()
        for text in [*CLAUDE_CODE_TRANSCRIPT, CLAUDE_CODE_RESULT]:
            for record in parser.parse(text) or []:
                if record.replaces_provisional:
                    ctx.replace_provisional_usage(
                        model=record.model or "", totals=record.tokens, cost_usd=record.cost_usd
                    )
                else:
                    ctx.record_usage(
                        model=record.model or "",
                        input_tokens=record.tokens.input,
                        output_tokens=record.tokens.output,
                        cache_read_tokens=record.tokens.cache_read,
                        cache_write_tokens=record.tokens.cache_write,
                    )

    async with open_executor(publisher) as executor:
        await executor.submit(replay, task_id="cc").wait()
    info = executor.task("cc")
    # Totals equal the result's, not provisional + result.
    assert (info.input_tokens, info.output_tokens) == (11, 131)
    assert (info.cache_read_tokens, info.cache_write_tokens) == (29290, 5520)
    assert info.estimated_cost_usd == pytest.approx(0.0421)
    assert sum(u.total_tokens for u in usages) == 11 + 131 + 29290 + 5520
    assert usages[-1].cost_source == "reported"
    assert usages[-1].output_tokens == 8  # only what the result added
    assert sum(u.cost_usd or 0 for u in usages) == pytest.approx(0.0421)


def test_runcast_form_lines_are_increments_with_defaults() -> None:
    records, output = parse_all(
        [
            line({"usage": {"input_tokens": 100, "output_tokens": 20}}),
            line(
                {
                    "usage": {
                        "input_tokens": 5,
                        "output_tokens": 1,
                        "cache_read_tokens": 50,
                        "cache_write_tokens": 7,
                    },
                    "model": "gpt-4o",
                    "provider": "openai",
                    "cost_usd": 0.002,
                }
            ),
            line({"usage": {"input_tokens": 100, "output_tokens": 20}}),  # counted again
        ]
    )
    assert output == []
    assert records[0] == UsageRecord(TokenCounts(input=100, output=20))
    assert records[1] == UsageRecord(
        TokenCounts(5, 1, 50, 7), model="gpt-4o", provider="openai", cost_usd=0.002
    )
    assert summed(records).input == 205


def test_openai_chat_cached_tokens_are_inside_prompt_tokens() -> None:
    completion = {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi."},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 1117,
            "completion_tokens": 46,
            "total_tokens": 1163,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "system_fingerprint": "fp_fc9f1d7035",
    }
    records, _ = parse_all([line(completion), line(completion)])  # printed twice: once
    assert records == [
        UsageRecord(TokenCounts(input=93, output=46, cache_read=1024), model="gpt-4o-2024-08-06")
    ]


def test_openai_chat_stream_counts_the_final_usage_chunk() -> None:
    def chunk(content: str | None, usage: dict[str, Any] | None) -> str:
        choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
        return line(
            {
                "id": "chatcmpl-123",
                "object": "chat.completion.chunk",
                "model": "gpt-4o-mini",
                "choices": choices,
                "usage": usage,
            }
        )

    records, output = parse_all(
        [
            chunk("Hel", None),
            chunk("lo", None),
            chunk(None, {"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32}),
        ]
    )
    assert len(output) == 2  # chunks without usage stay output
    assert records == [UsageRecord(TokenCounts(input=30, output=2), model="gpt-4o-mini")]


def test_openai_responses_events_and_objects() -> None:
    def response(status: str, usage: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "id": "resp_67ccd2bed1ec8190b14f964abc054267",
            "object": "response",
            "status": status,
            "model": "gpt-4.1-2025-04-14",
            "output": [],
            "usage": usage,
        }

    usage = {
        "input_tokens": 2006,
        "input_tokens_details": {"cached_tokens": 1920},
        "output_tokens": 300,
        "output_tokens_details": {"reasoning_tokens": 128},
        "total_tokens": 2306,
    }
    streamed = [
        line({"type": "response.created", "sequence_number": 0, "response": response("x", None)}),
        line({"type": "response.output_text.delta", "sequence_number": 3, "delta": "Hi"}),
        line(
            {
                "type": "response.completed",
                "sequence_number": 9,
                "response": response("completed", usage),
            }
        ),
    ]
    records, output = parse_all([*streamed, line(response("completed", usage))])
    expected = TokenCounts(input=86, output=300, cache_read=1920)
    assert records == [UsageRecord(expected, model="gpt-4.1-2025-04-14")]  # same id: once
    assert len(output) == 2


def test_anthropic_messages_api_response() -> None:
    records, _ = parse_all(
        [
            line(
                {
                    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-haiku-4-5",
                    "content": [{"type": "text", "text": "Hi"}],
                    "usage": {
                        "input_tokens": 12,
                        "output_tokens": 6,
                        "cache_read_input_tokens": 100,
                        "cache_creation_input_tokens": 0,
                    },
                }
            )
        ]
    )
    assert records == [
        UsageRecord(TokenCounts(input=12, output=6, cache_read=100), model="claude-haiku-4-5")
    ]


@pytest.mark.parametrize(
    "text",
    [
        '{"usage": {"input_tokens": 5',  # malformed JSON
        "plain text progress 50%",
        "[1, 2, 3]",
        '{"event": "log", "msg": "no usage here"}',
        '{"usage": {"input_tokens": -5}}',  # negative count
        '{"usage": {"input_tokens": "5"}}',  # string count
        '{"usage": {"input_tokens": 5}, "cost_usd": "free"}',
        '{"usage": {"tokens": 5}}',  # unknown usage shape
        '{"usage": {}}',
        "",
    ],
)
def test_non_usage_lines_stay_output(text: str) -> None:
    assert UsageParser().parse(text) is None


def test_line_splitter_bounds_a_ten_megabyte_line() -> None:
    splitter = LineSplitter(max_line=1024)
    chunk = b"x" * 65536
    lines: list[tuple[bytes, bool]] = []
    for _ in range(160):  # 10 MiB without a newline
        lines += splitter.feed(chunk)
        assert len(splitter._buffer) <= 1024
    lines += splitter.feed(b"tail\nshort\npartial")
    lines += splitter.finish()
    assert [(len(text), cut) for text, cut in lines] == [(1024, True), (5, False), (7, False)]
    assert splitter.truncated_lines == 1
    assert splitter.lines == 3


def test_line_splitter_handles_lines_split_across_chunks() -> None:
    splitter = LineSplitter(max_line=100)
    assert splitter.feed(b'{"usage": {"inp') == []
    assert splitter.feed(b'ut_tokens": 1}}\r\nnext') == [
        (b'{"usage": {"input_tokens": 1}}\r', False)
    ]
    assert splitter.finish() == [(b"next", False)]
    assert splitter.finish() == []


async def _one_read_of(count: int) -> trio.testing.MemoryReceiveStream:
    send, receive = trio.testing.memory_stream_one_way_pair()
    await send.send_all(b"".join(b"l%d\n" % i for i in range(count)) + b"partial")
    await send.aclose()
    return receive


async def test_pump_hands_over_a_read_in_slices_then_the_last_line() -> None:
    batches: list[str] = []

    def handle(lines: list[tuple[bytes, bool]]) -> None:
        batches.append(f"{len(lines)} lines from {lines[0][0].decode()}")

    await pump_lines(await _one_read_of(2 * LINES_PER_STEP + 10), handle, LineSplitter())
    assert batches == [
        f"{LINES_PER_STEP} lines from l0",
        f"{LINES_PER_STEP} lines from l{LINES_PER_STEP}",
        f"10 lines from l{2 * LINES_PER_STEP}",
        "1 lines from partial",
    ]


async def test_pump_lets_other_tasks_run_between_the_slices_of_one_read() -> None:
    handled: list[int] = []
    with trio.CancelScope() as scope:

        def handle(lines: list[tuple[bytes, bool]]) -> None:
            handled.append(len(lines))
            scope.cancel()  # takes effect at the pump's next checkpoint

        await pump_lines(await _one_read_of(2 * LINES_PER_STEP), handle, LineSplitter())
    # The read held two slices: the pump checkpointed before the second.
    assert handled == [LINES_PER_STEP]


def test_line_splitter_counts_what_it_drops() -> None:
    splitter = LineSplitter(max_line=4)
    assert splitter.feed(b"abcdefg\nab") == [(b"abcd", True)]
    assert splitter.feed(b"cdef\n\n") == [(b"abcd", True), (b"", False)]
    assert (splitter.truncated_lines, splitter.dropped_bytes, splitter.lines) == (2, 5, 3)
    assert splitter.buffered == 0


def test_parser_remembers_a_bounded_number_of_ids_least_recently_seen_out_first() -> None:
    parser = UsageParser()

    def message(msg_id: str) -> str:
        return line({"type": "message", "id": msg_id, "usage": {"input_tokens": 1}})

    assert parser.parse(message("first"))
    for number in range(MAX_TRACKED_IDS - 1):
        assert parser.parse(message(f"m{number}"))
    assert parser.parse(message("first")) == []  # seen again: now the most recent
    assert parser.parse(message("one too many"))  # evicts m0, the least recently seen
    assert parser.parse(message("first")) == []
    assert parser.parse(message("m0"))  # forgotten, so counted again


def test_claude_code_blocks_repeating_usage_count_once_but_new_ids_and_growth_count() -> None:
    usage = {"input_tokens": 3, "output_tokens": 10}
    grown = {"input_tokens": 3, "output_tokens": 25}
    text = {"type": "text", "text": "hi"}
    records, _ = parse_all(
        [
            claude_assistant("msg_a", text, usage),
            claude_assistant("msg_a", text, usage),  # the next content block: a repeat
            claude_assistant("msg_b", text, usage),  # same usage, another message: counts
            claude_assistant("msg_b", text, grown),  # streamed growth: only the difference
        ]
    )
    assert [r.tokens for r in records] == [
        TokenCounts(input=3, output=10),
        TokenCounts(input=3, output=10),
        TokenCounts(output=15),
    ]


def test_a_usage_key_written_with_escapes_is_still_counted() -> None:
    records, _ = parse_all(['{"\\u0075sage": {"input_tokens": 3}}'])
    assert [r.tokens for r in records] == [TokenCounts(input=3)]


async def test_a_reads_usage_records_go_out_as_one_event_after_its_output() -> None:
    publisher = Publisher()
    seen: list[Published] = []
    publisher.add_listener(seen.append)

    async def replay(ctx: TaskContext) -> None:
        reader = StdoutReader(ctx)
        # One read: the init line, two turns (three usage lines, one a repeat), a tool result.
        reader.on_stdout([(text.encode(), False) for text in CLAUDE_CODE_TRANSCRIPT])
        # The next read: the result's totals replace the provisional sum.
        reader.on_stdout([(CLAUDE_CODE_RESULT.encode(), False)])

    async with open_executor(publisher) as executor:
        await executor.submit(replay, task_id="cc").wait()
    mine = [p.event for p in seen if p.event.task_id == "cc"]
    kinds = [type(event).__name__ for event in mine if isinstance(event, TaskUsage | TaskOutput)]
    # The read's two output lines first (one event), then ONE usage event for its two records.
    assert kinds == ["TaskOutput", "TaskUsage", "TaskUsage"]
    output = next(event for event in mine if isinstance(event, TaskOutput))
    assert output.line.split("\n") == [CLAUDE_CODE_TRANSCRIPT[0], CLAUDE_CODE_TRANSCRIPT[3]]
    assert output.lines == 2
    coalesced, settled = [event for event in mine if isinstance(event, TaskUsage)]
    turns = [TokenCounts(4, 3, 12040, 5210), TokenCounts(7, 120, 17250, 310)]
    assert coalesced.records == 2
    assert coalesced.total_tokens == sum(turn.total for turn in turns)
    each = [
        CostCalculator().cost("claude-sonnet-4-5-20250929", None, turn).usd or 0.0 for turn in turns
    ]
    assert coalesced.cost_usd == pytest.approx(sum(each))
    assert (coalesced.cost_source, settled.cost_source, settled.records) == (
        "computed",
        "reported",
        1,
    )
    info = executor.task("cc")
    assert (info.input_tokens, info.output_tokens) == (11, 131)
    assert info.estimated_cost_usd == pytest.approx(0.0421)
