"""Executor throughput: no-op tasks through the full pipeline vs a bare trio nursery.

Both sides start the same number of tasks with the same concurrency and the
same feeding pattern (``batch`` submissions, then one checkpoint; the pipeline
also waits while the store signals back-pressure), so the ratio
is the cost of what runcast adds: task states, events, session aggregate,
metrics and the store on a file.  The pipeline's time ends when the store has
written the last event, not merely when the last task returned.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from api.cli._heap import GC_THRESHOLDS, settled_heap
from api.cli._run import SUBMIT_CHUNK
from api.store._recorder import WRITE_CHUNK, StoreRecorder
from api.store._store import SessionStore
from events import Published, Publisher, TaskCompleted
from executor import TaskContext, open_executor

from ._loopwatch import watch_loop
from ._pipeline import STAGES, open_pipeline
from ._profile import StageProfile, profiled
from ._report import emit, median, table, write_result


@attrs.frozen
class ThroughputConfig:
    tasks: int = 100_000
    concurrency: int = 64
    batch: int = 1_000
    #: Five: bare trio's GC swings it between rounds on this VM (bench/README.md
    #: §2.5), so the median of three could land on either side of the target from
    #: noise alone.
    rounds: int = 5
    profile_tasks: int = 20_000
    ablation_tasks: int = 10_000
    ablation_rounds: int = 3
    #: The loop-blockage runs: the full pipeline under a step timer, per gc setting.
    loop_tasks: int = 20_000
    loop_rounds: int = 2


async def _noop_task(ctx: TaskContext) -> None:
    return None


async def _bare_noop() -> None:
    return None


async def run_bare(config: ThroughputConfig) -> float:
    """Seconds for ``tasks`` no-op tasks in a nursery, ``concurrency`` at a time."""
    limiter = trio.CapacityLimiter(config.concurrency)

    async def limited() -> None:
        async with limiter:
            await _bare_noop()

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for index in range(config.tasks):
            nursery.start_soon(limited)
            if (index + 1) % config.batch == 0:
                await trio.lowlevel.checkpoint()
    return time.perf_counter() - start


@attrs.frozen
class PipelineTiming:
    tasks_done_seconds: float
    stored_seconds: float
    events_published: int
    session_updates: int
    store_flushes: int


async def run_pipeline(
    config: ThroughputConfig, directory: Path, stages: Collection[str] = STAGES
) -> PipelineTiming:
    await trio.Path(directory).mkdir(parents=True, exist_ok=True)
    completed = 0

    def count_completions(item: Published) -> None:
        nonlocal completed
        if isinstance(item.event, TaskCompleted):
            completed += 1

    async with open_pipeline(directory / "throughput.db", stages=stages) as pipeline:
        if pipeline.broadcaster is None:
            # With a broadcaster its aggregate's count is checked below: no listener
            # the bare nursery does not have either.
            pipeline.publisher.add_listener(count_completions)
        start = time.perf_counter()
        async with open_executor(pipeline.publisher, concurrency=config.concurrency) as executor:
            for index in range(config.tasks):
                executor.submit(_noop_task, task_id=f"t{index}")
                if (index + 1) % config.batch == 0:
                    await trio.lowlevel.checkpoint()
                    # Submitting 100,000 at once outruns the store's hard limit
                    # (200,000 pending writes): hold, as `runcast run` holds starts.
                    await pipeline.wait_for_store()
        done = time.perf_counter() - start
    stored = time.perf_counter() - start
    pipeline.check_stored()
    if pipeline.broadcaster is None:
        if completed != config.tasks:
            raise RuntimeError(f"expected {config.tasks} completed tasks, {completed} completed")
    else:
        aggregated = pipeline.broadcaster.aggregate.ended("completed")
        if aggregated != config.tasks:
            raise RuntimeError(f"the session aggregate counts {aggregated} completed tasks")
    return PipelineTiming(
        tasks_done_seconds=done,
        stored_seconds=stored,
        events_published=pipeline.publisher.published_total,
        session_updates=(
            0 if pipeline.broadcaster is None else sum(pipeline.broadcaster.updates_sent.values())
        ),
        store_flushes=0 if pipeline.recorder is None else pipeline.recorder.flushes,
    )


#: Ablation steps: each adds one listener to the one before.
ABLATION: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("executor + publisher", ()),
    ("+ broadcaster", ("broadcaster",)),
    ("+ metrics", ("broadcaster", "metrics")),
    ("+ store (full pipeline)", STAGES),
)


async def _published_events(config: ThroughputConfig) -> list[Published]:
    """Every event of ``ablation_tasks`` no-op tasks, as the publisher numbered them."""
    publisher = Publisher()
    items: list[Published] = []
    publisher.add_listener(items.append)
    async with open_executor(publisher, concurrency=config.concurrency) as executor:
        for index in range(config.ablation_tasks):
            executor.submit(_noop_task, task_id=f"t{index}")
            if (index + 1) % config.batch == 0:
                await trio.lowlevel.checkpoint()
    return items


def store_alone(
    config: ThroughputConfig, items: list[Published], directory: Path
) -> dict[str, Any]:
    """The store's writes for those events with nothing else running: tasks/s.

    The events go through the recorder's own row building and transactions
    (``StoreRecorder.write_now``, in chunks of ``WRITE_CHUNK`` as its worker
    thread writes them), in this thread, with no trio and no other listener.
    """
    directory.mkdir(parents=True, exist_ok=True)
    store = SessionStore.open(directory / "alone.db")
    try:
        store.begin_session("bench")
        recorder = StoreRecorder(store, "bench")
        start = time.perf_counter()
        for offset in range(0, len(items), WRITE_CHUNK):
            recorder.write_now(items[offset : offset + WRITE_CHUNK])
        seconds = time.perf_counter() - start
    finally:
        store.close()
    return {
        "events_per_task": len(items) / config.ablation_tasks,
        "tasks_per_second": config.ablation_tasks / seconds,
    }


async def _ablation(config: ThroughputConfig, directory: Path) -> dict[str, float]:
    """Median tasks/s with the listeners added one at a time (``ablation_tasks`` each)."""
    small = attrs.evolve(config, tasks=config.ablation_tasks)
    samples: dict[str, list[float]] = {"bare nursery": []}
    for round_index in range(config.ablation_rounds):
        samples["bare nursery"].append(small.tasks / await run_bare(small))
        for name, stages in ABLATION:
            where = directory / f"{round_index}-{name.replace(' ', '_')}"
            timing = await run_pipeline(small, where, stages)
            samples.setdefault(name, []).append(small.tasks / timing.stored_seconds)
    return {name: median(rates) for name, rates in samples.items()}


@contextmanager
def _as_is() -> Iterator[None]:
    yield


def _gc_variants() -> dict[str, Callable[[], AbstractContextManager[None]]]:
    """The process's gc settings compared for loop blockage (``api.cli._heap``)."""
    return {
        "as is": _as_is,
        f"settle_heap() {GC_THRESHOLDS}": settled_heap,
        "settle_heap() (7000, 10, 10)": lambda: settled_heap((7_000, 10, 10)),
        "settle_heap() (700, 10, 100)": lambda: settled_heap((700, 10, 100)),
    }


async def loop_blockage(config: ThroughputConfig, directory: Path) -> dict[str, Any]:
    """The longest event-loop step of the full pipeline, and its rate, per gc setting."""
    # Fed as `runcast run` feeds a job file: SUBMIT_CHUNK submissions per step.
    small = attrs.evolve(config, tasks=config.loop_tasks, batch=SUBMIT_CHUNK)
    variants = _gc_variants()
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for round_index in range(config.loop_rounds):
        names = list(variants) if round_index % 2 == 0 else list(reversed(variants))
        for name in names:
            where = directory / f"{round_index}-{len(samples[name])}-{hash(name) & 0xFFFF}"
            with variants[name]():
                async with watch_loop() as watch:
                    timing = await run_pipeline(small, where)
            row = watch.as_dict()
            row["tasks_per_second"] = small.tasks / timing.stored_seconds
            samples[name].append(row)
    return {
        name: {
            "rounds": rows,
            "worst_step_seconds": max(r["longest_task_step_seconds"] for r in rows),
            "worst_step_cpu_seconds": max(r["most_cpu_in_one_step_seconds"] for r in rows),
            "steps_over_10ms": sum(r["task_steps_over_10ms"] for r in rows),
            "worst_heartbeat_seconds": max(r["heartbeat_worst_lateness_seconds"] for r in rows),
            "median_tasks_per_second": median(r["tasks_per_second"] for r in rows),
        }
        for name, rows in samples.items()
    }


async def run(config: ThroughputConfig) -> dict[str, Any]:
    bare: list[float] = []
    full: list[PipelineTiming] = []
    with tempfile.TemporaryDirectory(prefix="runcast-bench-") as tmp:
        for round_index in range(config.rounds):
            # Alternate the order so drift on a noisy machine hits both sides.
            if round_index % 2 == 0:
                bare.append(await run_bare(config))
                full.append(await run_pipeline(config, Path(tmp) / f"r{round_index}"))
            else:
                full.append(await run_pipeline(config, Path(tmp) / f"r{round_index}"))
                bare.append(await run_bare(config))
        profile = await _profile(config, Path(tmp) / "profile")
        ablation = await _ablation(config, Path(tmp) / "ablation")
        alone = store_alone(config, await _published_events(config), Path(tmp) / "alone")
        loop = await loop_blockage(config, Path(tmp) / "loop")
    result = _summarize(config, bare, full, profile, ablation)
    result["store_alone"] = alone
    result["loop_blockage"] = loop
    return result


async def _profile(config: ThroughputConfig, directory: Path) -> StageProfile:
    captured: list[StageProfile] = []
    small = attrs.evolve(config, tasks=config.profile_tasks)
    with profiled(captured.append):
        await run_pipeline(small, directory)
    return captured[0]


def _summarize(
    config: ThroughputConfig,
    bare: list[float],
    full: list[PipelineTiming],
    profile: StageProfile,
    ablation: dict[str, float],
) -> dict[str, Any]:
    bare_rate = [config.tasks / seconds for seconds in bare]
    done_rate = [config.tasks / timing.tasks_done_seconds for timing in full]
    stored_rate = [config.tasks / timing.stored_seconds for timing in full]
    ratios = [s / b for s, b in zip(stored_rate, bare_rate, strict=True)]
    return {
        "config": attrs.asdict(config),
        "bare_tasks_per_second": bare_rate,
        "pipeline_tasks_per_second_done": done_rate,
        "pipeline_tasks_per_second_stored": stored_rate,
        "ratio_per_round": ratios,
        "median_bare_tasks_per_second": median(bare_rate),
        "median_pipeline_tasks_per_second": median(stored_rate),
        "median_ratio": median(ratios),
        "target_ratio": 0.5,
        "events_published_per_run": full[0].events_published,
        "session_updates_per_run": full[0].session_updates,
        "store_flushes_per_run": full[0].store_flushes,
        "profile": profile.as_dict(),
        "ablation_tasks_per_second": ablation,
        "ablation_microseconds_per_task": _per_task_costs(ablation),
    }


def _per_task_costs(rates: dict[str, float]) -> dict[str, float]:
    """What each step adds per task, in microseconds (the first: the bare nursery's own)."""
    costs: dict[str, float] = {}
    previous = 0.0
    for name, rate in rates.items():
        per_task = 1e6 / rate
        costs[name] = per_task - previous
        previous = per_task
    return costs


def report(result: dict[str, Any]) -> None:
    rows = [
        ("bare trio nursery + CapacityLimiter", result["median_bare_tasks_per_second"], 1.0),
        (
            "runcast pipeline (events, broadcaster, metrics, store)",
            result["median_pipeline_tasks_per_second"],
            result["median_ratio"],
        ),
    ]
    config = result["config"]
    emit(
        table(
            f"Executor throughput: {config['tasks']:,} no-op tasks, concurrency "
            f"{config['concurrency']}, median of {config['rounds']} rounds "
            f"(target: ratio >= {result['target_ratio']})",
            ("pipeline", "tasks/s", "ratio"),
            rows,
        )
    )
    costs = result["ablation_microseconds_per_task"]
    emit(
        table(
            f"What each stage adds ({config['ablation_tasks']:,} tasks, listeners added one "
            f"at a time, median of {config['ablation_rounds']} rounds)",
            ("step", "tasks/s", "adds us/task"),
            [
                (name, rate, costs[name])
                for name, rate in result["ablation_tasks_per_second"].items()
            ],
        )
    )
    alone = result["store_alone"]
    emit(
        f"The store's writes alone ({alone['events_per_task']:.0f} events per task, rows built "
        f"and written in this thread, no trio): {alone['tasks_per_second']:,.0f} tasks/s"
    )
    shares = result["profile"]["stage_share"]
    emit(
        table(
            f"Where the pipeline's time goes (cProfile self time, "
            f"{config['profile_tasks']:,} tasks, trio thread only)",
            ("stage", "share"),
            [(stage, f"{share:.1%}") for stage, share in shares.items()],
        )
    )


def _report_loop(result: dict[str, Any]) -> None:
    config = result["config"]
    emit(
        table(
            f"Event loop blockage: the full pipeline, {config['loop_tasks']:,} tasks, "
            f"{config['loop_rounds']} rounds per gc setting (target: no step over 10 ms)",
            (
                "gc setting",
                "worst step ms",
                "worst step CPU ms",
                "steps > 10 ms",
                "worst heartbeat ms",
                "tasks/s",
            ),
            [
                (
                    name,
                    row["worst_step_seconds"] * 1000,
                    row["worst_step_cpu_seconds"] * 1000,
                    row["steps_over_10ms"],
                    row["worst_heartbeat_seconds"] * 1000,
                    row["median_tasks_per_second"],
                )
                for name, row in result["loop_blockage"].items()
            ],
        )
    )


async def main(config: ThroughputConfig, results_dir: Path) -> dict[str, Any]:
    result = await run(config)
    report(result)
    _report_loop(result)
    write_result("executor_throughput", result, directory=results_dir)
    return result
