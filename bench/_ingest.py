"""Usage ingestion: Claude Code stream-json from a subprocess into the store, with cost.

One job-file task (``cat TRANSCRIPT``) runs through ``Executor.submit_command``
with the full pipeline; the clock stops when the store holds every record.
The store is then read back and its totals compared with the transcript's, so
a fast run that lost records cannot pass.  A step timer and a 1 ms heartbeat
measure how long the event loop was blocked.

Each round runs the executor as it is, then with the what-ifs of ``_rates``
applied (genai-prices rates memoised; a stdout reader that yields every 2 ms),
to show what those proposed changes gain.
"""

from __future__ import annotations

import random
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import attrs
import trio
from genai_prices import Usage, calc_price

from api._store import SessionStore
from executor import CostCalculator, open_executor
from executor._command import CommandSpec
from executor._usage import UsageParser, UsageRecord

from ._loopwatch import BLOCK_THRESHOLD, watch_loop
from ._pipeline import open_pipeline
from ._profile import StageProfile, profiled
from ._rates import MemoisedPrices, memoised_prices, yielding_reader
from ._report import emit, median, table, write_result
from ._transcript import MODEL, Transcript, write_transcript

AS_IS = "as is"
MEMOISED = "memoised rates"
YIELDING = "memoised rates + yielding reader"
VARIANTS = (AS_IS, MEMOISED, YIELDING)


@attrs.frozen
class IngestConfig:
    records: int = 30_000
    rounds: int = 3
    profile_records: int = 5_000


@attrs.frozen
class IngestRound:
    variant: str
    seconds: float
    records_per_second: float
    lines_per_second: float
    worst_step_seconds: float
    worst_heartbeat_seconds: float
    loop: dict[str, object]


async def ingest_once(transcript: Transcript, directory: Path, variant: str) -> IngestRound:
    await trio.Path(directory).mkdir(parents=True, exist_ok=True)
    store_path = directory / "ingest.db"
    patches = ExitStack()
    if variant in (MEMOISED, YIELDING):
        patches.enter_context(memoised_prices())
    if variant == YIELDING:
        patches.enter_context(yielding_reader())
    spec = CommandSpec(
        command=("cat", str(transcript.path)), id="claude", model=MODEL, provider="anthropic"
    )
    with patches:
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
        variant=variant,
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
    rates["cost (genai-prices calc_price)"] = _cost_rate(sample)
    with memoised_prices():
        rates["cost (memoised rates)"] = _cost_rate(sample)
    return rates


def _cost_rate(sample: list[UsageRecord]) -> float:
    calculator = CostCalculator()
    start = time.perf_counter()
    for record in sample:
        calculator.cost(MODEL, "anthropic", record.tokens, record.cost_usd)
    return len(sample) / (time.perf_counter() - start)


def check_memoised_rates(samples: int = 300) -> int:
    """Compare memoised rates with ``calc_price`` on random usage; returns how many matched."""
    memo = MemoisedPrices()
    chooser = random.Random(8)
    models = (("claude-sonnet-4-5-20250929", "anthropic"), ("gpt-4o", "openai"))
    for index in range(samples):
        model, provider = models[index % len(models)]
        cache_read = chooser.randint(0, 150_000)
        cache_write = chooser.randint(0, 5_000)
        usage = Usage(
            input_tokens=chooser.randint(0, 80_000) + cache_read + cache_write,
            output_tokens=chooser.randint(0, 4_000),
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
        exact = float(calc_price(usage, model_ref=model, provider_id=provider).total_price)
        fast = float(memo(usage, model_ref=model, provider_id=provider).total_price)
        if abs(exact - fast) > 1e-9 * max(1.0, exact):
            raise RuntimeError(f"memoised price {fast} != calc_price {exact} for {usage}")
    return samples


async def run(config: IngestConfig) -> dict[str, Any]:
    rounds: list[IngestRound] = []
    with tempfile.TemporaryDirectory(prefix="runcast-bench-") as tmp:
        transcript = write_transcript(Path(tmp) / "stream.jsonl", config.records)
        for round_index in range(config.rounds):
            order = VARIANTS if round_index % 2 == 0 else tuple(reversed(VARIANTS))
            for variant in order:
                where = Path(tmp) / f"r{round_index}-{variant.replace(' ', '-')}"
                rounds.append(await ingest_once(transcript, where, variant))
        stages = stage_rates(transcript)
        small = write_transcript(Path(tmp) / "small.jsonl", config.profile_records)
        captured: list[StageProfile] = []
        with profiled(captured.append):
            await ingest_once(small, Path(tmp) / "profile-as-is", AS_IS)
        with profiled(captured.append):
            await ingest_once(small, Path(tmp) / "profile-memoised", MEMOISED)
    checked = check_memoised_rates()
    return _summarize(config, transcript, rounds, stages, captured, checked)


def _summarize(
    config: IngestConfig,
    transcript: Transcript,
    rounds: list[IngestRound],
    stages: dict[str, float],
    profiles: list[StageProfile],
    checked: int,
) -> dict[str, Any]:
    variants: dict[str, Any] = {}
    for variant in VARIANTS:
        mine = [r for r in rounds if r.variant == variant]
        variants[variant] = {
            "records_per_second": [r.records_per_second for r in mine],
            "median_records_per_second": median(r.records_per_second for r in mine),
            "median_lines_per_second": median(r.lines_per_second for r in mine),
            "worst_task_step_seconds": max(
                float(str(r.loop["longest_task_step_seconds"])) for r in mine
            ),
            "worst_heartbeat_lateness_seconds": max(
                float(str(r.loop["heartbeat_worst_lateness_seconds"])) for r in mine
            ),
            "loop_per_round": [r.loop for r in mine],
        }
    return {
        "config": attrs.asdict(config),
        "transcript_lines": transcript.lines,
        "usage_records": transcript.usage_records,
        "target_records_per_second": 50_000,
        "target_max_block_seconds": BLOCK_THRESHOLD,
        "variants": variants,
        "stage_alone_records_per_second": stages,
        "memoised_rates_checked_against_calc_price": checked,
        "profile_as_is": profiles[0].as_dict(),
        "profile_memoised_rates": profiles[1].as_dict(),
    }


def report(result: dict[str, Any]) -> None:
    config = result["config"]
    rows = []
    for variant, data in result["variants"].items():
        rows.append(
            (
                variant,
                data["median_records_per_second"],
                data["median_lines_per_second"],
                data["worst_task_step_seconds"] * 1000,
                data["worst_heartbeat_lateness_seconds"] * 1000,
            )
        )
    emit(
        table(
            f"Usage ingestion: {result['usage_records']:,} Claude Code stream-json records "
            f"({result['transcript_lines']:,} lines) from `cat` into the store, median of "
            f"{config['rounds']} rounds (targets: >= 50,000 records/s, loop blocked <= 10 ms)",
            ("cost stage", "records/s", "lines/s", "worst step ms", "worst heartbeat ms"),
            rows,
        )
    )
    emit(
        table(
            "Each stage alone (records/s it could sustain)",
            ("stage", "records/s"),
            list(result["stage_alone_records_per_second"].items()),
        )
    )
    as_is = result["profile_as_is"]["stage_share"]
    memoised = result["profile_memoised_rates"]["stage_share"]
    emit(
        table(
            f"Where the time goes ({config['profile_records']:,} records, cProfile self time)",
            ("stage", "share as is", "share, memoised rates"),
            [(s, f"{v:.1%}", f"{memoised.get(s, 0.0):.1%}") for s, v in as_is.items()],
        )
    )


async def main(config: IngestConfig, results_dir: Path) -> dict[str, Any]:
    result = await run(config)
    report(result)
    write_result("usage_ingestion", result, directory=results_dir)
    return result
