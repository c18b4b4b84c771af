"""The recorder keeps its worker writing while the loop runs (no taking turns)."""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

from api._store import SessionStore
from api._store_recorder import WRITE_CHUNK, StoreRecorder, serve_store_recorder
from events import Publisher, TaskQueued

SID = "sess-pacing"


def _store() -> SessionStore:
    store = SessionStore.open(":memory:")
    store.begin_session(SID)
    return store


async def test_a_chunk_of_pending_events_wakes_the_worker_before_the_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = _store()
    writes_at: list[float] = []

    async def clocked_write(write: Callable[[], object]) -> None:
        writes_at.append(trio.current_time())
        write()
        await trio.lowlevel.checkpoint()

    publisher = Publisher()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_store_recorder(
                store,
                publisher,
                session_id=SID,
                flush_interval=60.0,
                offload=clocked_write,
                task_status=task_status,
            )
        )
        start = trio.current_time()
        for n in range(WRITE_CHUNK - 1):
            publisher.publish(TaskQueued(task_id=f"t{n}"))
        await trio.testing.wait_all_tasks_blocked()
        assert writes_at == []  # under a chunk: the interval decides
        publisher.publish(TaskQueued(task_id="last"))
        await trio.testing.wait_all_tasks_blocked()
        assert writes_at == [start]
        # The wake is re-armed: the next chunk is written at once too.
        for n in range(WRITE_CHUNK):
            publisher.publish(TaskQueued(task_id=f"u{n}"))
        await trio.testing.wait_all_tasks_blocked()
        assert writes_at == [start, start]
        nursery.cancel_scope.cancel()
    assert len(store.tasks(SID)) == 2 * WRITE_CHUNK


async def test_backpressure_lifts_mid_flush_once_under_half_the_soft_limit_is_left() -> None:
    store = _store()
    signals: list[tuple[bool, int]] = []
    recorder: StoreRecorder

    def note(on: bool) -> None:
        signals.append((on, recorder.written_events))

    recorder = StoreRecorder(store, SID, soft_limit=4 * WRITE_CHUNK, on_backpressure=note)
    publisher = Publisher()
    publisher.add_listener(recorder)
    for n in range(4 * WRITE_CHUNK):
        publisher.publish(TaskQueued(task_id=f"t{n}"))
    assert signals == [(True, 0)]
    assert await recorder.flush() == 4 * WRITE_CHUNK
    # Lifted after the third chunk (1,000 left < 2,000), not after the whole batch.
    assert signals == [(True, 0), (False, 3 * WRITE_CHUNK)]
    assert recorder.written_events == 4 * WRITE_CHUNK
    assert len(store.tasks(SID)) == 4 * WRITE_CHUNK
