"""Usage ingestion: Claude Code stream-json from a subprocess into the store, with cost.

One job-file task (``cat TRANSCRIPT``) runs through ``Executor.submit_command``
with the full pipeline; the clock stops when the store holds every record.
The store is then read back and its totals compared with the transcript's, so
a fast run that lost records cannot pass.  A step timer and a 1 ms heartbeat
measure how long the event loop was blocked.

Beside the end-to-end figure, each stage is timed alone (parsing, cost with
the executor's calculator, cost with a bare genai-prices ``calc_price`` call)
and the run is profiled, so the cost of each stage is visible.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import trio
from genai_prices import Usage, calc_price

from api._store import SessionStore
from executor import CostCalculator, TokenCounts, open_executor
from executor._command import CommandSpec
from executor._usage import UsageParser

from ._loopwatch import BLOCK_THRESHOLD, watch_loop
from ._pipeline import open_pipeline
from ._profile import StageProfile, profiled
from ._report import emit, median, table, write_result
from ._transcript import MODEL, Transcript, write_transcript


@attrs.frozen
class IngestConfig:
    records: int = 30_000
    rounds: int = 3
    profile_records: int = 5_000


@attrs.frozen
class IngestRound:
    seconds: float
    records_per_second: float
    lines_per_second: float
    worst_step_seconds: float
    worst_heartbeat_seconds: float
    loop: dict[str, object]


async def ingest_once(transcript: Transcript, directory: Path) -> IngestRound:
    await trio.Path(directory).mkdir(parents=True, exist_ok=True)
    store_path = directory / "ingest.db"
    spec = CommandSpec(
        command=("cat", str(transcript.path)), id="claude", model=MODEL, provider="anthropic"
    )
    async with open_pipeline(store_path) as pipeline, watch_loop() as watch:
        start = time.perf_counter()
        async with open_executor(pipeline.publisher, concurrency=1) as executor:
            handle = executor.submit_command(spec)
        await handle.wait()
        session_id = pipeline.session_id
    seconds = time.perf_counter() - start
    pipeline.check_stored()
    _check_store(store_path, session_id, transcript)
    return IngestRound(
        seconds=seconds,
        records_per_second=transcript.usage_records / seconds,
        lines_per_second=transcript.lines / seconds,
        worst_step_seconds=watch.steps.longest,
        worst_heartbeat_seconds=watch.heartbeat.worst_lateness,
        loop=watch.as_dict(),
    )


def _check_store(path: Path, session_id: str, transcript: Transcript) -> None:
    store = SessionStore.open(path)
    try:
        totals = store.usage_totals(session_id)
    finally:
        store.close()
    expected = (
        transcript.input_tokens,
        transcript.output_tokens,
        transcript.cache_read_tokens,
        transcript.cache_write_tokens,
    )
    stored = (
        totals.input_tokens,
        totals.output_tokens,
        totals.cache_read_tokens,
        totals.cache_write_tokens,
    )
    if stored != expected:
        raise RuntimeError(f"store holds tokens {stored}, the transcript printed {expected}")


def stage_rates(transcript: Transcript) -> dict[str, float]:
    """Each stage alone, outside trio: records per second it could sustain."""
    lines = transcript.path.read_text(encoding="utf-8").splitlines()
    parser = UsageParser()
    start = time.perf_counter()
    records = [record for line in lines for record in (parser.parse(line) or ())]
    parse_seconds = time.perf_counter() - start
    sample = records[: min(len(records), 2_000)]
    rates: dict[str, float] = {"parse": len(records) / parse_seconds}
    # What-if: most stream-json lines (tool results, text) carry no usage; a
    # substring test before json.loads skips them (the executor's parser does not).
    skipping = UsageParser()
    start = time.perf_counter()
    found = [
        record for line in lines if '"usage"' in line for record in (skipping.parse(line) or ())
    ]
    rates['parse, lines without "usage" skipped before json.loads'] = len(found) / (
        time.perf_counter() - start
    )
    calculator = CostCalculator()
    calculator.cost(MODEL, "anthropic", sample[0].tokens)  # first call resolves the model
    start = time.perf_counter()
    for record in sample:
        calculator.cost(MODEL, "anthropic", record.tokens, record.cost_usd)
    rates["cost (executor CostCalculator)"] = len(sample) / (time.perf_counter() - start)
    start = time.perf_counter()
    for record in sample[:500]:
        calc_price(_genai_usage(record.tokens), model_ref=MODEL, provider_id="anthropic")
    rates["cost (one genai-prices calc_price call)"] = min(500, len(sample)) / (
        time.perf_counter() - start
    )
    return rates


def _genai_usage(tokens: TokenCounts) -> Usage:
    return Usage(
        input_tokens=tokens.input + tokens.cache_read + tokens.cache_write,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
    )


async def run(config: IngestConfig) -> dict[str, Any]:
    rounds: list[IngestRound] = []
    with tempfile.TemporaryDirectory(prefix="runcast-bench-") as tmp:
        transcript = write_transcript(Path(tmp) / "stream.jsonl", config.records)
        for round_index in range(config.rounds):
            rounds.append(await ingest_once(transcript, Path(tmp) / f"r{round_index}"))
        stages = stage_rates(transcript)
        small = write_transcript(Path(tmp) / "small.jsonl", config.profile_records)
        captured: list[StageProfile] = []
        with profiled(captured.append):
            await ingest_once(small, Path(tmp) / "profile")
    return _summarize(config, transcript, rounds, stages, captured[0])


def _summarize(
    config: IngestConfig,
    transcript: Transcript,
    rounds: list[IngestRound],
    stages: dict[str, float],
    profile: StageProfile,
) -> dict[str, Any]:
    return {
        "config": attrs.asdict(config),
        "transcript_lines": transcript.lines,
        "usage_records": transcript.usage_records,
        "target_records_per_second": 50_000,
        "target_max_block_seconds": BLOCK_THRESHOLD,
        "records_per_second": [r.records_per_second for r in rounds],
        "median_records_per_second": median(r.records_per_second for r in rounds),
        "median_lines_per_second": median(r.lines_per_second for r in rounds),
        "worst_task_step_seconds": max(r.worst_step_seconds for r in rounds),
        "worst_heartbeat_lateness_seconds": max(r.worst_heartbeat_seconds for r in rounds),
        "loop_per_round": [r.loop for r in rounds],
        "stage_alone_records_per_second": stages,
        "profile": profile.as_dict(),
    }


def report(result: dict[str, Any]) -> None:
    config = result["config"]
    row = (
        result["median_records_per_second"],
        result["median_lines_per_second"],
        result["worst_task_step_seconds"] * 1000,
        result["worst_heartbeat_lateness_seconds"] * 1000,
    )
    emit(
        table(
            f"Usage ingestion: {result['usage_records']:,} Claude Code stream-json records "
            f"({result['transcript_lines']:,} lines) from `cat` into the store, median of "
            f"{config['rounds']} rounds (targets: >= 50,000 records/s, loop blocked <= 10 ms)",
            ("records/s", "lines/s", "worst task step ms", "worst heartbeat lateness ms"),
            [row],
        )
    )
    emit(
        table(
            "Each stage alone (records/s it could sustain)",
            ("stage", "records/s"),
            list(result["stage_alone_records_per_second"].items()),
        )
    )
    emit(
        table(
            f"Where the time goes ({config['profile_records']:,} records, cProfile self time)",
            ("stage", "share"),
            [(s, f"{v:.1%}") for s, v in result["profile"]["stage_share"].items()],
        )
    )


async def main(config: IngestConfig, results_dir: Path) -> dict[str, Any]:
    result = await run(config)
    report(result)
    write_result("usage_ingestion", result, directory=results_dir)
    return result
