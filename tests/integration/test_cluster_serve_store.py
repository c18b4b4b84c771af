"""A recording serve node restarted on its store (real redis-server): with the whole history
kept it replays it; with only the newest events kept it starts from the store's sums.
Either way it answers what a node that read the whole stream answers, and records on."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from _cluster_front_support import FakeWorker, caught_up, eventually, producing, serve_node
from _cluster_link_support import session_name
from _redis_support import RedisServer

from api.store import SessionStore, claim_session, release_lease
from events import TaskCompleted, TaskFailed, TaskOutput, TaskStarted, TaskUsage
from executor import TaskInfo

pytestmark = pytest.mark.integration

COMPARED = (
    "input_tokens",
    "output_tokens",
    "estimated_cost_usd",
    "tasks_completed",
    "tasks_failed",
    "tasks_running",
    "tasks_queued",
    "session_id",
)


async def _first_run(worker: FakeWorker) -> None:
    await worker.submit("t1", "t2", "t3")
    await worker.claim(3)
    await worker.append(
        TaskStarted(task_id="t1"),
        TaskUsage(task_id="t1", input_tokens=100, output_tokens=9, cost_usd=0.5),
        *(TaskOutput(task_id="t1", line=f"line {n}") for n in range(20)),
        TaskCompleted(task_id="t1", exit_code=0),
        TaskStarted(task_id="t2"),
        TaskUsage(task_id="t2", input_tokens=30, cost_usd=0.25),
        TaskFailed(task_id="t2", error="exit 2", exit_code=2),
        TaskStarted(task_id="t3"),
        TaskUsage(task_id="t3", input_tokens=1, cost_usd=0.125),
    )


def _rows(tasks: list[TaskInfo]) -> list[tuple[str, str, int, float]]:
    return [(t.task_id, t.state, t.input_tokens, t.estimated_cost_usd) for t in tasks]


@pytest.mark.parametrize("keep", [None, 5])
async def test_a_restarted_recording_node_answers_as_one_that_read_it_all(
    redis_server: RedisServer, tmp_path: Path, request: pytest.FixtureRequest, keep: int | None
) -> None:
    name = request.node.name
    store = SessionStore.open(tmp_path / "runcast.db")
    claim = claim_session(store, job_key=f"cluster:{session_name(name)}")
    session_id = claim.lease.session_id
    try:
        async with producing(redis_server, name) as worker:
            await _first_run(worker)
            with trio.fail_after(15):
                async with serve_node(redis_server, name, store=store, lease=claim.lease) as first:
                    await caught_up(first, worker.link)
                if keep is not None:
                    assert store.prune_events(session_id, keep=keep) > 0
                # While no node runs, t3 ends.
                await worker.append(
                    TaskUsage(task_id="t3", output_tokens=4), TaskCompleted(task_id="t3")
                )
                async with (
                    serve_node(redis_server, name, store=store, lease=claim.lease) as again,
                    serve_node(redis_server, name) as reference,
                ):
                    await caught_up(again, worker.link)
                    await caught_up(reference, worker.link)
                    got = again.broadcaster.snapshot()
                    wanted = reference.broadcaster.snapshot()
                    tasks, reference_tasks = again.table.tasks(), reference.table.tasks()
                    recorder = again.recorder
                    assert recorder is not None
                    await eventually(lambda: not recorder.pending)
                    failure = recorder.failure
    finally:
        release_lease(store, claim.lease)
        store.close()
    assert {k: getattr(got, k) for k in COMPARED} == {k: getattr(wanted, k) for k in COMPARED}
    assert (got.input_tokens, got.estimated_cost_usd, got.tasks_completed) == (131, 0.875, 2)
    assert _rows(tasks) == _rows(reference_tasks)
    assert failure is None  # nothing written twice
