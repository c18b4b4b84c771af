"""Issue 17: usage numbers out of range and over-long names never fail a task.

A record with a count outside ``0..MAX_RECORD_TOKENS`` or a cost outside
``0..MAX_RECORD_COST_USD`` (2**63 tokens crashed the store, a 400-digit count
failed the task) is refused: its line stays output, and the task says so once.
A model or provider name longer than ``MAX_NAME`` (the ``task_usage`` rules
refused it and the task failed, its usage lost) is cut and counted.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import structlog
import trio
from _usage_support import RecordingContext

from events import (
    MAX_NAME,
    MAX_RECORD_COST_USD,
    MAX_RECORD_TOKENS,
    Published,
    Publisher,
    TaskCompleted,
    TaskOutput,
    TaskUsage,
)
from executor import (
    InvalidArgumentError,
    TaskContext,
    TokenCounts,
    UsageParser,
    UsageRecord,
    open_executor,
)
from executor._context import MAX_WARNINGS_PER_ATTEMPT
from executor.process import StdoutReader

HUGE = 2**63
DIGITS_400 = int("9" * 400)


def line(value: object) -> str:
    return json.dumps(value)


def claude_turn(msg_id: str, **usage: int) -> str:
    message = {"id": msg_id, "model": "claude-sonnet-4-5", "content": [], "usage": usage}
    return line({"type": "assistant", "message": message})


OUT_OF_RANGE = [
    pytest.param(line({"usage": {"input_tokens": HUGE}}), "input_tokens", id="runcast-2**63"),
    pytest.param(line({"usage": {"input_tokens": DIGITS_400}}), "input_tokens", id="400-digits"),
    pytest.param(line({"usage": {"output_tokens": -1}}), "output_tokens", id="negative"),
    pytest.param(
        line({"usage": {"input_tokens": 5}, "cost_usd": 1e308}), "cost_usd", id="cost-1e308"
    ),
    pytest.param('{"usage": {"input_tokens": 5}, "cost_usd": NaN}', "cost_usd", id="cost-nan"),
    pytest.param(
        line({"type": "result", "usage": {"input_tokens": HUGE}}), "input_tokens", id="cc-result"
    ),
    pytest.param(
        line({"type": "result", "usage": {"input_tokens": 1}, "total_cost_usd": 2e6}),
        "total_cost_usd",
        id="cc-result-cost",
    ),
    pytest.param(claude_turn("m1", output_tokens=HUGE), "output_tokens", id="cc-assistant"),
    pytest.param(claude_turn("m1", input_tokens=DIGITS_400), "input_tokens", id="cc-400-digits"),
    pytest.param(
        line({"type": "message", "id": "a", "usage": {"cache_read_input_tokens": HUGE}}),
        "cache_read_input_tokens",
        id="anthropic",
    ),
    pytest.param(
        line({"id": "c", "usage": {"prompt_tokens": 1, "completion_tokens": HUGE}}),
        "completion_tokens",
        id="openai-chat",
    ),
    pytest.param(
        line({"type": "response.completed", "response": {"usage": {"input_tokens": HUGE}}}),
        "input_tokens",
        id="openai-responses",
    ),
]


@pytest.mark.parametrize(("text", "field"), OUT_OF_RANGE)
def test_a_number_out_of_range_refuses_the_record_once_naming_the_field(
    text: str, field: str
) -> None:
    refused: list[str] = []
    parser = UsageParser(on_refused=refused.append)
    assert parser.parse(text) is None
    assert parser.parse(text.encode()) is None  # bytes, as the reader hands lines over
    assert len(refused) == 2
    assert refused[0] == refused[1]
    assert refused[0].startswith(f"{field} = ")
    assert parser.records_refused == 2
    assert parser.lines_parsed == 0


def test_the_refusal_says_what_the_number_was() -> None:
    refused: list[str] = []
    parser = UsageParser(on_refused=refused.append)
    parser.parse(line({"usage": {"input_tokens": HUGE}}))
    parser.parse(line({"usage": {"input_tokens": DIGITS_400}}))
    parser.parse(line({"usage": {"input_tokens": 1}, "cost_usd": 1e308}))
    assert refused == [
        "input_tokens = 9223372036854775808 is not in 0..1,000,000,000,000",
        "input_tokens = (a number of 400 digits) is not in 0..1,000,000,000,000",
        "cost_usd = 1e+308 is not in 0..1,000,000",
    ]


def test_numbers_at_the_bounds_are_counted() -> None:
    parser = UsageParser(on_refused=pytest.fail)
    text = line(
        {
            "usage": {"input_tokens": MAX_RECORD_TOKENS, "cache_write_tokens": MAX_RECORD_TOKENS},
            "cost_usd": MAX_RECORD_COST_USD,
        }
    )
    assert parser.parse(text) == [
        UsageRecord(
            TokenCounts(MAX_RECORD_TOKENS, cache_write=MAX_RECORD_TOKENS),
            cost_usd=MAX_RECORD_COST_USD,
        )
    ]


def test_a_refused_turn_leaves_the_parsers_state_as_it_was() -> None:
    parser = UsageParser(on_refused=lambda _: None)
    assert parser.parse(claude_turn("m1", output_tokens=HUGE)) is None
    # The same id with sane counts is new: nothing of the refused turn was remembered.
    assert parser.parse(claude_turn("m1", output_tokens=7)) == [
        UsageRecord(TokenCounts(output=7), model="claude-sonnet-4-5")
    ]


def test_the_reader_keeps_a_refused_line_as_output_and_says_so_once() -> None:
    ctx = RecordingContext()
    reader = StdoutReader(cast(TaskContext, ctx))  # its own parser, as run_command makes it
    bad = line({"usage": {"input_tokens": HUGE}})
    good = line({"usage": {"input_tokens": 4}})
    reader.on_stdout([(bad.encode(), False), (good.encode(), False)])
    assert ctx.calls == [
        ("refused", "input_tokens = 9223372036854775808 is not in 0..1,000,000,000,000"),
        ("output", ("stdout", [(bad, False)])),
        ("batch", ("", None, [TokenCounts(4)])),
    ]


async def reads(ctx: TaskContext, batches: list[list[str]]) -> None:
    """A task that is a subprocess's stdout reader: what ``run_command`` does with its lines."""
    reader = StdoutReader(ctx)
    for batch in batches:
        reader.on_stdout([(text.encode(), False) for text in batch])
        await trio.lowlevel.checkpoint()


async def run_reader(batches: list[list[str]]) -> tuple[list[Published], Any, list[Any]]:
    publisher = Publisher()
    items: list[Published] = []
    publisher.add_listener(items.append)
    with structlog.testing.capture_logs() as logs:
        async with open_executor(publisher) as executor:
            executor.submit(reads, batches, task_id="t", model="house-model")
    return items, executor, logs


async def test_a_task_printing_huge_counts_completes_and_keeps_its_other_usage() -> None:
    bad = [
        line({"usage": {"input_tokens": HUGE}}),
        line({"usage": {"input_tokens": DIGITS_400}}),
        line({"usage": {"input_tokens": 1}, "cost_usd": 1e308}),
        line({"type": "result", "usage": {"input_tokens": HUGE}}),
    ]
    items, executor, logs = await run_reader([bad, [line({"usage": {"output_tokens": 6}})]])
    events = [p.event for p in items]
    assert isinstance(events[-1], TaskCompleted)
    [usage] = [e for e in events if isinstance(e, TaskUsage)]
    assert usage.output_tokens == 6
    [output] = [e for e in events if isinstance(e, TaskOutput)]
    assert output.line == "\n".join(bad)
    assert executor.usage_records_refused == 4
    refusals = [entry for entry in logs if entry["event"] == "usage_record_refused"]
    assert [(entry["task_id"], entry["log_level"]) for entry in refusals] == [("t", "warning")] * 4
    assert "9223372036854775808" in refusals[0]["reason"]


async def test_a_flood_of_refusals_logs_a_bounded_number_and_counts_all() -> None:
    bad = line({"usage": {"input_tokens": HUGE}})
    _, executor, logs = await run_reader([[bad] * 100, [bad] * 25])
    assert executor.usage_records_refused == 125
    logged = [entry["event"] for entry in logs]
    assert logged.count("usage_record_refused") == MAX_WARNINGS_PER_ATTEMPT
    [summary] = [entry for entry in logs if entry["event"] == "warnings_not_logged"]
    assert summary["count"] == 125 - MAX_WARNINGS_PER_ATTEMPT


@pytest.mark.parametrize("field", ["model", "provider"])
async def test_an_over_long_name_a_task_reports_is_cut_and_its_usage_counted(field: str) -> None:
    name = "m" * 300
    items, executor, logs = await run_reader([[line({"usage": {"input_tokens": 5}, field: name})]])
    events = [p.event for p in items]
    assert isinstance(events[-1], TaskCompleted)
    [usage] = [e for e in events if isinstance(e, TaskUsage)]
    assert usage.input_tokens == 5
    kept = getattr(usage, field)
    assert len(kept) == MAX_NAME
    assert kept.startswith("m" * 200)
    assert kept.endswith("[truncated]")
    assert executor.names_cut == 1
    [warning] = [entry for entry in logs if entry["event"] == "usage_name_cut"]
    assert (warning["field"], warning["length"], warning["kept"]) == (field, 300, MAX_NAME)


async def test_a_claude_code_result_after_an_over_long_model_is_counted() -> None:
    # The result names no model: the turn's (too long) model is used, and cut again.
    turn = line(
        {
            "type": "assistant",
            "message": {"id": "m1", "model": "x" * 300, "usage": {"input_tokens": 3}},
        }
    )
    result = line({"type": "result", "usage": {"input_tokens": 10}, "total_cost_usd": 0.5})
    items, executor, _ = await run_reader([[turn, result]])
    usages = [p.event for p in items if isinstance(p.event, TaskUsage)]
    assert [(u.input_tokens, len(u.model)) for u in usages] == [(3, MAX_NAME), (7, MAX_NAME)]
    assert sum(u.cost_usd or 0.0 for u in usages) == 0.5
    assert executor.names_cut == 2


@pytest.mark.parametrize(
    ("usage", "message"),
    [
        ({"output_tokens": HUGE}, "output_tokens must be <= 1,000,000,000,000, got 92"),
        (
            {"input_tokens": 1, "cost_usd": 1e308},
            "cost_usd must be a finite number in 0..1,000,000",
        ),
        ({"cost_usd": float("inf")}, "cost_usd must be a finite number"),
        ({"cost_usd": 10**400}, "cost_usd must be a finite number"),  # no OverflowError
        ({"cost_usd": float("nan")}, "cost_usd must be a finite number"),
    ],
)
async def test_record_usage_refuses_numbers_out_of_range(
    usage: dict[str, Any], message: str
) -> None:
    seen: list[BaseException] = []

    async def agent(ctx: TaskContext) -> None:
        try:
            ctx.record_usage(model="m", **usage)
        except InvalidArgumentError as exc:
            seen.append(exc)

    async with open_executor(Publisher()) as executor:
        executor.submit(agent)
    [error] = seen
    assert message in str(error)


@pytest.mark.parametrize(
    ("model", "provider", "message"),
    [
        ("m" * 300, None, "model: must be at most 256 characters, got 300"),
        ("m", "p" * 257, "provider: must be at most 256 characters, got 257"),
    ],
)
async def test_submit_refuses_an_over_long_default_model_or_provider(
    model: str, provider: str | None, message: str
) -> None:
    async def agent(ctx: TaskContext) -> None:
        ctx.record_usage(model="", input_tokens=1)

    async with open_executor(Publisher()) as executor:
        with pytest.raises(InvalidArgumentError, match=message):
            executor.submit(agent, model=model, provider=provider)
        assert executor.tasks() == []
