"""Burst: 1,000 tasks start at once; how many ``session_update``s, and how soon the first.

The burst is the one the product sees: an executor started paused with 1,000
tasks queued (an operator reviewing the queue) is resumed, so every task
starts inside one ``resume()`` call.  Then all 1,000 are released and end
together, a second burst.  Updates are timed by a publisher listener, on the
full pipeline (broadcaster, metrics, store on a file).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import trio

from events import Published, SessionUpdate
from executor import TaskContext, open_executor

from ._pipeline import open_pipeline
from ._report import emit, median, table, write_result


@attrs.frozen
class BurstConfig:
    tasks: int = 1_000
    rounds: int = 5
    #: Quiet time after each burst in which its updates are counted.
    settle_seconds: float = 1.0


@attrs.define(eq=False)
class _UpdateLog:
    times: list[float] = attrs.field(factory=list)
    updates: list[SessionUpdate] = attrs.field(factory=list)

    def __call__(self, item: Published) -> None:
        if isinstance(item.event, SessionUpdate):
            self.times.append(time.perf_counter())
            self.updates.append(item.event)

    def since(self, moment: float) -> list[tuple[float, SessionUpdate]]:
        return [(t, u) for t, u in zip(self.times, self.updates, strict=True) if t >= moment]


@attrs.frozen
class BurstPhase:
    trigger_seconds: float
    #: The trio thread's CPU time in the trigger (wall minus this: waiting for a CPU).
    trigger_cpu_seconds: float
    updates: int
    first_update_seconds: float | None
    final_running: int
    final_completed: int


def _phase(
    log: _UpdateLog, started: float, trigger_seconds: float, trigger_cpu_seconds: float
) -> BurstPhase:
    seen = log.since(started)
    last = seen[-1][1] if seen else None
    return BurstPhase(
        trigger_seconds=trigger_seconds,
        trigger_cpu_seconds=trigger_cpu_seconds,
        updates=len(seen),
        first_update_seconds=seen[0][0] - started if seen else None,
        final_running=last.tasks_running if last else -1,
        final_completed=last.tasks_completed if last else -1,
    )


async def burst_once(config: BurstConfig, directory: Path) -> tuple[BurstPhase, BurstPhase]:
    await trio.Path(directory).mkdir(parents=True, exist_ok=True)
    release = trio.Event()

    async def held(ctx: TaskContext) -> None:
        await release.wait()

    log = _UpdateLog()
    async with open_pipeline(directory / "burst.db") as pipeline:
        remove = pipeline.publisher.add_listener(log)
        async with open_executor(
            pipeline.publisher, concurrency=config.tasks, start_paused=True
        ) as executor:
            for index in range(config.tasks):
                executor.submit(held, task_id=f"b{index}")
            await trio.sleep(config.settle_seconds)  # let the queueing's updates go out first
            started, started_cpu = time.perf_counter(), time.thread_time()
            executor.resume()
            resume_seconds = time.perf_counter() - started
            resume_cpu = time.thread_time() - started_cpu
            await trio.sleep(config.settle_seconds)
            starts = _phase(log, started, resume_seconds, resume_cpu)
            ended, ended_cpu = time.perf_counter(), time.thread_time()
            release.set()
            await executor.join()
            ends_trigger = time.perf_counter() - ended
            # Includes the other tasks' steps in that time (the broadcaster's, the store's).
            ends_cpu = time.thread_time() - ended_cpu
            await trio.sleep(config.settle_seconds)
            ends = _phase(log, ended, ends_trigger, ends_cpu)
        remove()
    return starts, ends


async def run(config: BurstConfig) -> dict[str, Any]:
    phases: list[tuple[BurstPhase, BurstPhase]] = []
    with tempfile.TemporaryDirectory(prefix="runcast-bench-") as tmp:
        for round_index in range(config.rounds):
            phases.append(await burst_once(config, Path(tmp) / f"r{round_index}"))
    return _summarize(config, phases)


def _summarize(config: BurstConfig, phases: list[tuple[BurstPhase, BurstPhase]]) -> dict[str, Any]:
    result: dict[str, Any] = {"config": attrs.asdict(config), "target_first_update_seconds": 0.1}
    for name, index in (("start_burst", 0), ("end_burst", 1)):
        mine = [pair[index] for pair in phases]
        firsts = [p.first_update_seconds for p in mine if p.first_update_seconds is not None]
        result[name] = {
            "rounds": [attrs.asdict(p) for p in mine],
            "median_updates": median(p.updates for p in mine),
            "max_updates": max(p.updates for p in mine),
            "median_first_update_seconds": median(firsts) if firsts else None,
            "worst_first_update_seconds": max(firsts) if firsts else None,
            "median_trigger_seconds": median(p.trigger_seconds for p in mine),
            "worst_trigger_seconds": max(p.trigger_seconds for p in mine),
            "worst_trigger_cpu_seconds": max(p.trigger_cpu_seconds for p in mine),
            "final_counts_right": all(
                p.final_running == (config.tasks if index == 0 else 0)
                and p.final_completed == (0 if index == 0 else config.tasks)
                for p in mine
            ),
        }
    return result


def report(result: dict[str, Any]) -> None:
    config = result["config"]
    rows = []
    count = f"{config['tasks']:,}"
    for name, label in (("start_burst", f"{count} start (resume)"), ("end_burst", f"{count} end")):
        data = result[name]
        first = data["median_first_update_seconds"]
        worst = data["worst_first_update_seconds"]
        rows.append(
            (
                label,
                data["median_updates"],
                data["max_updates"],
                "-" if first is None else first * 1000,
                "-" if worst is None else worst * 1000,
                data["median_trigger_seconds"] * 1000,
                data["worst_trigger_seconds"] * 1000,
                data["worst_trigger_cpu_seconds"] * 1000,
                "yes" if data["final_counts_right"] else "NO",
            )
        )
    emit(
        table(
            f"Burst: {config['tasks']:,} tasks, full pipeline, {config['rounds']} rounds "
            "(target: a handful of updates, first within 100 ms)",
            (
                "burst",
                "updates (median)",
                "updates (max)",
                "first update ms (median)",
                "first ms (worst)",
                "trigger ms (median)",
                "trigger ms (worst)",
                "its CPU ms (worst)",
                "final counts right",
            ),
            rows,
        )
    )


async def main(config: BurstConfig, results_dir: Path) -> dict[str, Any]:
    result = await run(config)
    report(result)
    write_result("burst", result, directory=results_dir)
    return result
