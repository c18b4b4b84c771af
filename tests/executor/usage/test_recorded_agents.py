"""Issue 19: genuine agent recordings (tests/data/usage/) give their README's ground truth.

Each file is read as a task's stdout is (``LineSplitter`` + ``StdoutReader`` in
a real executor task, 64 KiB reads); the task's usage events, summed per
model, must equal the figures tests/data/usage/README.md derives from the
producers' documentation and source.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from genai_prices import extract_usage

from events import Published, Publisher, TaskUsage
from executor import (
    CostCalculator,
    LineSplitter,
    TaskContext,
    TokenCounts,
    UsageParser,
    open_executor,
)
from executor.process import READ_CHUNK, StdoutReader

DATA = Path(__file__).parents[2] / "data" / "usage"

Truth = dict[str, tuple[TokenCounts, float | None]]

#: Per file: per model (input, output, cache read, cache write), cost USD (README tables).
CLAUDE_CODE: dict[str, Truth] = {
    "api-error-zero-usage-two-models.jsonl": {
        "claude-haiku-4-5-20251001": (TokenCounts(1198, 188, 0, 0), 0.002138),
        "claude-opus-4-5-20251101": (TokenCounts(1039, 791, 0, 0), 0.02497),
    },
    "sonnet45-haiku35-single-run.jsonl": {
        "claude-3-5-haiku-20241022": (TokenCounts(20406, 683, 0, 0), 0.0190568),
        "claude-sonnet-4-5-20250929": (TokenCounts(58, 1966, 160370, 13631), 0.12889125),
    },
    "sonnet45-haiku45-subagent.jsonl": {
        "claude-sonnet-4-5-20250929": (TokenCounts(156, 10580, 1773252, 60390), 0.9176061),
        "claude-haiku-4-5-20251001": (TokenCounts(1371, 4179, 21342, 17928), 0.0468102),
    },
    "sonnet45-side-calls-web-search.jsonl": {
        "claude-sonnet-4-5-20250929": (TokenCounts(183, 17323, 2294220, 79207), 1.26568625),
        "claude-haiku-4-5-20251001": (TokenCounts(780, 1399, 0, 0), 0.007775),
    },
    "opus45-two-results-success-then-error.jsonl": {
        "claude-haiku-4-5-20251001": (TokenCounts(46220, 1767, 0, 37684), 0.10216),
        "claude-opus-4-5-20251101": (TokenCounts(4, 31539, 4604604, 101239), 3.72354075),
    },
}
#: The process's ``total_cost_usd`` (the first result's, in the two-result file).
CLAUDE_CODE_COST = {
    "api-error-zero-usage-two-models.jsonl": 0.027108,
    "sonnet45-haiku35-single-run.jsonl": 0.14794805,
    "sonnet45-haiku45-subagent.jsonl": 0.9644163,
    "sonnet45-side-calls-web-search.jsonl": 1.27346125,
    "opus45-two-results-success-then-error.jsonl": 3.82570075,
}


def chunks(data: bytes) -> list[bytes]:
    return [data[at : at + READ_CHUNK] for at in range(0, len(data), READ_CHUNK)]


async def replay(
    path: Path, *, model: str = "", provider: str | None = None
) -> tuple[list[TaskUsage], Truth]:
    """The task's usage events for ``path`` as its stdout, and their sums per model."""
    publisher = Publisher()
    usages: list[TaskUsage] = []

    def keep(item: Published) -> None:
        if isinstance(item.event, TaskUsage):
            usages.append(item.event)

    publisher.add_listener(keep)

    stdout = await trio.Path(path).read_bytes()

    async def task(ctx: TaskContext) -> None:
        reader = StdoutReader(ctx, parser=UsageParser())
        splitter = LineSplitter()
        for data in chunks(stdout):
            reader.on_stdout(splitter.feed(data))
        reader.on_stdout(splitter.finish())

    async with open_executor(publisher) as executor:
        await executor.submit(task, task_id="agent", model=model, provider=provider).wait()
    sums: dict[str, tuple[TokenCounts, float | None]] = {}
    for event in usages:
        tokens, cost = sums.get(event.model, (TokenCounts(), None))
        tokens += TokenCounts(
            event.input_tokens,
            event.output_tokens,
            event.cache_read_tokens,
            event.cache_write_tokens,
        )
        if event.cost_usd is not None:
            cost = (cost or 0.0) + event.cost_usd
        sums[event.model] = (tokens, cost)
    return usages, sums


@pytest.mark.parametrize("name", sorted(CLAUDE_CODE))
async def test_a_claude_code_recording_counts_each_model_as_its_model_usage(name: str) -> None:
    usages, sums = await replay(DATA / "claude-code" / name)
    truth = CLAUDE_CODE[name]
    assert set(sums) == set(truth)
    for model, (tokens, cost) in truth.items():
        assert sums[model][0] == tokens, model
        assert sums[model][1] == pytest.approx(cost, rel=1e-12, abs=1e-15), model
    assert sum(event.total_tokens for event in usages) == sum(t.total for t, _ in truth.values())
    total_cost = sum(event.cost_usd or 0.0 for event in usages)
    assert total_cost == pytest.approx(CLAUDE_CODE_COST[name], rel=1e-12)


async def test_the_models_usage_is_filed_as_reported_cost() -> None:
    usages, _ = await replay(DATA / "claude-code" / "api-error-zero-usage-two-models.jsonl")
    # The main loop counted nothing: the two models' records are the result's own.
    assert [(event.model, event.cost_source) for event in usages] == [
        ("claude-haiku-4-5-20251001", "reported"),
        ("claude-opus-4-5-20251101", "reported"),
    ]


def result_line(cost: float, model_usage: dict[str, tuple[int, int, int, int, float]]) -> bytes:
    entries = {
        model: {
            "inputTokens": counts[0],
            "outputTokens": counts[1],
            "cacheReadInputTokens": counts[2],
            "cacheCreationInputTokens": counts[3],
            "webSearchRequests": 0,
            "costUSD": counts[4],
        }
        for model, counts in model_usage.items()
    }
    line = {
        "type": "result",
        "subtype": "success",
        "total_cost_usd": cost,
        "usage": {"input_tokens": 1, "output_tokens": 1},
        "modelUsage": entries,
    }
    return json.dumps(line).encode() + b"\n"


async def test_cumulative_results_of_one_process_are_replaced_not_added(tmp_path: Path) -> None:
    # Three turns of one process (--input-format stream-json): running totals.
    # The semantics are from Claude Code's source (README, "Field semantics");
    # no genuine recording of it was found, so the lines are built here.
    sonnet, haiku = "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"
    lines = [
        result_line(0.01, {sonnet: (10, 100, 1000, 50, 0.01)}),
        result_line(0.03, {sonnet: (20, 300, 3000, 80, 0.025), haiku: (5, 5, 0, 0, 0.005)}),
        # /clear: the running totals start again
        result_line(0.002, {sonnet: (3, 30, 0, 0, 0.002)}),
    ]
    path = tmp_path / "stream.jsonl"
    path.write_bytes(b"".join(lines))
    usages, sums = await replay(path)
    assert sums[sonnet][0] == TokenCounts(23, 330, 3000, 80)
    assert sums[sonnet][1] == pytest.approx(0.027)
    assert sums[haiku][0] == TokenCounts(5, 5, 0, 0)
    assert sums[haiku][1] == pytest.approx(0.005)
    assert sum(event.cost_usd or 0.0 for event in usages) == pytest.approx(0.032)


async def test_results_without_model_usage_add_turns_and_take_the_latest_cost(
    tmp_path: Path,
) -> None:
    def result(cost: float, output: int) -> bytes:
        line = {"type": "result", "total_cost_usd": cost, "usage": {"output_tokens": output}}
        return json.dumps(line).encode() + b"\n"

    path = tmp_path / "turns.jsonl"
    path.write_bytes(result(0.01, 10) + result(0.025, 7) + result(0.0, 0))
    _, sums = await replay(path, model="claude-sonnet-4-5-20250929")
    [(tokens, cost)] = sums.values()
    assert tokens == TokenCounts(output=17)  # each result's usage is its turn's
    assert cost == pytest.approx(0.025)  # the running total, not 0.01 + 0.025


async def test_a_codex_exec_turn_is_its_running_total_split_into_cache_and_input() -> None:
    usages, sums = await replay(
        DATA / "codex-exec" / "gpt5-single-turn.jsonl", model="gpt-5", provider="openai"
    )
    # README: input 177136 of which cached 163840, output 2836 (reasoning inside).
    expected = CostCalculator().cost("gpt-5", "openai", TokenCounts(13296, 2836, 163840)).usd
    [(model, (tokens, cost))] = sums.items()
    assert (model, tokens) == ("gpt-5", TokenCounts(13296, 2836, 163840, 0))
    assert cost == pytest.approx(expected)
    assert [event.cost_source for event in usages] == ["computed"]


async def test_a_failed_codex_turn_counts_nothing() -> None:
    usages, _ = await replay(DATA / "codex-exec" / "usage-limit-turn-failed.jsonl")
    assert usages == []


async def test_a_later_codex_total_replaces_the_earlier_one(tmp_path: Path) -> None:
    def completed(total: int, cached: int, output: int) -> bytes:
        usage = {"input_tokens": total, "cached_input_tokens": cached, "output_tokens": output}
        return json.dumps({"type": "turn.completed", "usage": usage}).encode() + b"\n"

    path = tmp_path / "codex.jsonl"
    path.write_bytes(completed(1000, 800, 50) + completed(2500, 2000, 90))
    _, sums = await replay(path)
    [(tokens, cost)] = sums.values()
    assert (tokens, cost) == (TokenCounts(500, 90, 2000, 0), None)  # no model: unpriced


GEMINI_JSON = {
    "flash-lite-router-plus-3-flash.json": {
        "gemini-2.5-flash-lite": TokenCounts(3605, 247, 0, 0),
        "gemini-3-flash-preview": TokenCounts(9058, 55, 0, 0),
    },
    "3-flash-cached-plus-3.1-flash-lite-router.json": {
        "gemini-3.1-flash-lite": TokenCounts(3982, 454, 0, 0),
        "gemini-3-flash-preview": TokenCounts(29146, 3265, 73161, 0),
    },
}


@pytest.mark.parametrize("name", sorted(GEMINI_JSON))
async def test_a_gemini_json_object_over_many_lines_counts_each_model(name: str) -> None:
    _, sums = await replay(DATA / "gemini-json" / name)
    assert {model: tokens for model, (tokens, _) in sums.items()} == GEMINI_JSON[name]


async def test_a_gemini_stream_json_result_counts_its_models_stats(tmp_path: Path) -> None:
    # No genuine stream-json recording with an identifiable source was found
    # (README, "Not found"): this is the documented shape (convertToStreamStats).
    stats = {
        "total_tokens": 12965,
        "input_tokens": 12663,
        "output_tokens": 56,
        "cached": 0,
        "input": 12663,
        "duration_ms": 4000,
        "tool_calls": 0,
        "models": {
            "gemini-2.5-flash-lite": {
                "total_tokens": 3852,
                "input_tokens": 3605,
                "output_tokens": 52,
                "cached": 0,
                "input": 3605,
            },
            "gemini-3-flash-preview": {
                "total_tokens": 9113,
                "input_tokens": 9058,
                "output_tokens": 4,
                "cached": 1000,
                "input": 8058,
            },
        },
    }
    lines = [
        {"type": "init", "timestamp": "t", "session_id": "s", "model": "auto"},
        {"type": "message", "timestamp": "t", "role": "assistant", "content": "x"},
        {"type": "result", "timestamp": "t", "status": "success", "stats": stats},
    ]
    path = tmp_path / "stream.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    _, sums = await replay(path)
    assert {model: tokens for model, (tokens, _) in sums.items()} == {
        # thoughts only as total - input - output: 3852 - 3605 - 52 = 195
        "gemini-2.5-flash-lite": TokenCounts(3605, 247, 0, 0),
        "gemini-3-flash-preview": TokenCounts(8058, 55, 1000, 0),
    }


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("claude-code/sonnet45-haiku45-subagent.jsonl", "claude-code"),
        ("codex-exec/gpt5-single-turn.jsonl", "codex-exec"),
        ("gemini-json/flash-lite-router-plus-3-flash.json", "gemini-json"),
    ],
)
async def test_each_usage_event_names_the_format_it_was_read_in(path: str, source: str) -> None:
    usages, _ = await replay(DATA / path)
    assert usages
    assert {event.source for event in usages} == {source}


@pytest.mark.parametrize("name", sorted(CLAUDE_CODE))
def test_our_anthropic_mapping_agrees_with_genai_prices_extract_usage(name: str) -> None:
    # genai_prices.extract_usage maps an Anthropic usage object too, but at ~26 us a
    # call (the whole ingestion path is ~12 us a record) it is the cross-check, not the path.
    checked = 0
    for text in (DATA / "claude-code" / name).read_text().splitlines():
        line = json.loads(text)
        if line.get("type") != "assistant":
            continue
        message = line["message"]
        checked += 1
        if message["model"] == "<synthetic>":
            # It maps only models it knows: another reason it is not the path.
            with pytest.raises(LookupError):
                extract_usage(message, provider_id="anthropic")
            continue
        extracted = extract_usage(message, provider_id="anthropic").usage
        records = UsageParser(typed_decode=False).parse(text)
        if not records:  # a zero-usage turn counts nothing
            assert not any(message["usage"].get(key) for key in ("input_tokens", "output_tokens"))
            continue
        [record] = records
        tokens = record.tokens
        assert tokens.cache_read == (extracted.cache_read_tokens or 0)
        assert tokens.cache_write == (extracted.cache_write_tokens or 0)
        assert tokens.cache_write_1h == (extracted.cache_write_1h_tokens or 0)
        cached = tokens.cache_read + tokens.cache_write
        assert tokens.input == (extracted.input_tokens or 0) - cached
        assert tokens.output == extracted.output_tokens
    assert checked


def test_a_model_usage_cost_out_of_range_is_refused_and_changes_nothing() -> None:
    sonnet = "claude-sonnet-4-5-20250929"
    parser = UsageParser()
    refused: list[str] = []
    parser.on_refused = refused.append
    assert parser.parse(result_line(0.5, {sonnet: (10, 100, 0, 0, 1e308)})) is None
    assert refused == [f"modelUsage.{sonnet}.costUSD = 1e+308 is not in 0..1,000,000"]
    # The refused result did not become the running total.
    [record] = parser.parse(result_line(0.01, {sonnet: (10, 100, 0, 0, 0.01)})) or []
    assert (record.tokens, record.cost_usd) == (TokenCounts(10, 100), 0.01)
