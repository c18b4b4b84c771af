"""Usage ingestion: Claude Code stream-json from a subprocess into the store, with cost.

One job-file task (``cat TRANSCRIPT``) runs through ``Executor.submit_command``
with the full pipeline; the clock stops when the store holds every record.
The store is then read back and its totals compared with the transcript's, so
a fast run that lost records cannot pass.  A step timer and a 1 ms heartbeat
measure how long the event loop was blocked.

Beside the end-to-end figure, each stage is timed alone (parsing, cost with
the executor's calculator, cost with a bare genai-prices ``calc_price`` call),
the CPU per record is measured adding one pipeline stage at a time, and the
run is profiled, so the cost of each stage is visible.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, cast

import attrs
import trio
from genai_prices import Usage, calc_price

from api.cli._heap import settled_heap
from api.store._store import SessionStore
from executor import CostCalculator, TaskContext, TokenCounts, open_executor
from executor.process import LINES_PER_STEP, READ_CHUNK, CommandSpec, LineSplitter, StdoutReader
from executor.usage import UsageParser

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


AS_IS = "as is"
FROZEN = "heap settled at start-up (what runcast run does)"
VARIANTS = (AS_IS, FROZEN)


@attrs.frozen
class IngestRound:
    variant: str
    seconds: float
    records_per_second: float
    lines_per_second: float
    worst_step_seconds: float
    worst_step_cpu_seconds: float
    worst_heartbeat_seconds: float
    loop: dict[str, object]


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """What ``runcast run`` does at start-up (``api.cli._heap.settle_heap``): genai-prices'
    data loaded, ``gc.collect(); gc.freeze()``, so full collections stop traversing
    the ~70,000 objects of imports and price data."""
    with settled_heap():
        yield


async def ingest_once(transcript: Transcript, directory: Path, variant: str = AS_IS) -> IngestRound:
    with _frozen_heap() if variant == FROZEN else nullcontext():
        return await _ingest(transcript, directory, variant)


async def _ingest(transcript: Transcript, directory: Path, variant: str) -> IngestRound:
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
        variant=variant,
        seconds=seconds,
        records_per_second=transcript.usage_records / seconds,
        lines_per_second=transcript.lines / seconds,
        worst_step_seconds=watch.steps.longest,
        worst_step_cpu_seconds=watch.steps.most_cpu,
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


STEPS = (
    "read, split, parse (events go nowhere)",
    "+ events: build, price, encode, publish",
    "+ broadcaster",
    "+ metrics",
    "+ store (full pipeline)",
)
_PIPELINE_STAGES: dict[str, tuple[str, ...]] = {
    STEPS[1]: (),
    STEPS[2]: ("broadcaster",),
    STEPS[3]: ("broadcaster", "metrics"),
    STEPS[4]: ("broadcaster", "metrics", "store"),
}


class _NullContext:
    """Stands for a task's context: the reader's usage and output go nowhere."""

    task_id = "claude"

    def output_lines(self, lines: Any, *, stream: str) -> None:
        pass

    def record_usage(self, **usage: Any) -> None:
        pass

    def record_usage_batch(self, **usage: Any) -> None:
        pass

    def replace_provisional_usage(self, **usage: Any) -> None:
        pass


def _reader_cpu_seconds(transcript: Transcript, *, typed_decode: bool = True) -> float:
    """The stdout reader alone, fed the transcript in 64 KiB reads as the pump feeds it.

    ``typed_decode=False``: every line read with ``json.loads`` (before msgspec).
    """
    data = transcript.path.read_bytes()
    parser = UsageParser(typed_decode=typed_decode)
    reader = StdoutReader(cast(TaskContext, _NullContext()), parser=parser)
    splitter = LineSplitter()
    start = time.process_time()
    for offset in range(0, len(data), READ_CHUNK):
        lines = splitter.feed(data[offset : offset + READ_CHUNK])
        for first in range(0, len(lines), LINES_PER_STEP):
            reader.on_stdout(lines[first : first + LINES_PER_STEP])
    reader.on_stdout(splitter.finish())
    return time.process_time() - start


async def _pipeline_cpu_seconds(
    transcript: Transcript, directory: Path, stages: tuple[str, ...]
) -> float:
    """CPU of the whole process (the store's worker thread too) for one run."""
    await trio.Path(directory).mkdir(parents=True, exist_ok=True)
    spec = CommandSpec(
        command=("cat", str(transcript.path)), id="claude", model=MODEL, provider="anthropic"
    )
    start = time.process_time()
    async with open_pipeline(directory / "ingest.db", stages=stages) as pipeline:
        async with open_executor(pipeline.publisher, concurrency=1) as executor:
            handle = executor.submit_command(spec)
        await handle.wait()
    seconds = time.process_time() - start
    pipeline.check_stored()
    return seconds


async def cost_per_record(transcript: Transcript, directory: Path, rounds: int) -> dict[str, Any]:
    """CPU microseconds per usage record, adding one stage at a time (median of rounds).

    CPU time, not wall: on a shared machine waiting for a CPU is not the
    pipeline's cost.  Each record is three lines (two parsed assistant
    blocks, one tool-result line published as task_output).
    """
    samples: dict[str, list[float]] = {step: [] for step in STEPS}
    json_reader: list[float] = []
    for round_index in range(rounds):
        json_reader.append(_reader_cpu_seconds(transcript, typed_decode=False))
        samples[STEPS[0]].append(_reader_cpu_seconds(transcript))
        for step, stages in _PIPELINE_STAGES.items():
            where = directory / f"cost-{round_index}-{STEPS.index(step)}"
            samples[step].append(await _pipeline_cpu_seconds(transcript, where, stages))
    per_record = {
        step: median(values) / transcript.usage_records * 1e6 for step, values in samples.items()
    }
    added = {}
    previous = 0.0
    for step, micros in per_record.items():
        added[step] = micros - previous
        previous = micros
    return {
        "cumulative_us": per_record,
        "added_us": added,
        "rounds": rounds,
        "reader_json_loads_us": median(json_reader) / transcript.usage_records * 1e6,
    }


def _genai_usage(tokens: TokenCounts) -> Usage:
    return Usage(
        input_tokens=tokens.input + tokens.cache_read + tokens.cache_write,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
    )


async def run(config: IngestConfig) -> dict[str, Any]:
    rounds: list[IngestRound] = []
    first_price = _first_price_seconds()
    with tempfile.TemporaryDirectory(prefix="runcast-bench-") as tmp:
        transcript = write_transcript(Path(tmp) / "stream.jsonl", config.records)
        for round_index in range(config.rounds):
            order = VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                where = Path(tmp) / f"r{round_index}-{VARIANTS.index(variant)}"
                rounds.append(await ingest_once(transcript, where, variant))
        stages = stage_rates(transcript)
        costs = await cost_per_record(transcript, Path(tmp), config.rounds)
        small = write_transcript(Path(tmp) / "small.jsonl", config.profile_records)
        captured: list[StageProfile] = []
        with profiled(captured.append):
            await ingest_once(small, Path(tmp) / "profile")
    result = _summarize(config, transcript, rounds, stages, captured[0])
    result["cost_per_record"] = costs
    result["first_price_in_process_seconds"] = first_price
    return result


def _first_price_seconds() -> float:
    """genai-prices loads its data on first use: one long step, once per process.

    Done before the rounds so no round pays it; reported on its own.
    """
    start = time.perf_counter()
    CostCalculator().cost(MODEL, "anthropic", TokenCounts(input=1))
    return time.perf_counter() - start


def _summarize(
    config: IngestConfig,
    transcript: Transcript,
    rounds: list[IngestRound],
    stages: dict[str, float],
    profile: StageProfile,
) -> dict[str, Any]:
    variants: dict[str, Any] = {}
    for variant in VARIANTS:
        mine = [r for r in rounds if r.variant == variant]
        variants[variant] = {
            "records_per_second": [r.records_per_second for r in mine],
            "median_records_per_second": median(r.records_per_second for r in mine),
            "median_lines_per_second": median(r.lines_per_second for r in mine),
            "worst_task_step_seconds": max(r.worst_step_seconds for r in mine),
            "worst_task_step_cpu_seconds": max(r.worst_step_cpu_seconds for r in mine),
            "worst_heartbeat_lateness_seconds": max(r.worst_heartbeat_seconds for r in mine),
            "loop_per_round": [r.loop for r in mine],
        }
    return {
        "config": attrs.asdict(config),
        "transcript_lines": transcript.lines,
        "usage_records": transcript.usage_records,
        "target_records_per_second": 50_000,
        "target_max_block_seconds": BLOCK_THRESHOLD,
        **variants[AS_IS],
        "variants": variants,
        "stage_alone_records_per_second": stages,
        "profile": profile.as_dict(),
    }


def report(result: dict[str, Any]) -> None:
    config = result["config"]
    rows = [
        (
            variant,
            data["median_records_per_second"],
            data["median_lines_per_second"],
            data["worst_task_step_seconds"] * 1000,
            data["worst_task_step_cpu_seconds"] * 1000,
            data["worst_heartbeat_lateness_seconds"] * 1000,
        )
        for variant, data in result["variants"].items()
    ]
    emit(
        table(
            f"Usage ingestion: {result['usage_records']:,} Claude Code stream-json records "
            f"({result['transcript_lines']:,} lines) from `cat` into the store, median of "
            f"{config['rounds']} rounds (targets: >= 50,000 records/s, loop blocked <= 10 ms)",
            (
                "",
                "records/s",
                "lines/s",
                "worst step ms (wall)",
                "worst step ms (CPU)",
                "worst heartbeat lateness ms",
            ),
            rows,
        )
    )
    emit(
        f"(once per process, before the rounds: the first price, genai-prices loading "
        f"its data, took {result['first_price_in_process_seconds'] * 1000:.0f} ms in one step)"
    )
    emit(
        table(
            "Each stage alone (records/s it could sustain)",
            ("stage", "records/s"),
            list(result["stage_alone_records_per_second"].items()),
        )
    )
    costs = result["cost_per_record"]
    emit(
        table(
            f"CPU per usage record, one stage added at a time (median of {costs['rounds']})",
            ("step", "us/record", "adds us/record"),
            [
                (step, micros, costs["added_us"][step])
                for step, micros in costs["cumulative_us"].items()
            ],
        )
    )
    emit(
        f"(the first step with every line read by json.loads, as before msgspec: "
        f"{costs['reader_json_loads_us']:.1f} us/record)"
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
