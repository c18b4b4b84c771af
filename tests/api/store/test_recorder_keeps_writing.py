"""The recorder keeps its worker writing while the loop runs (no taking turns)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from api.store import _recorder as _store_recorder
from api.store._recorder import WRITE_CHUNK, StoreRecorder, serve_store_recorder
from api.store._rows import StoreRows
from api.store._store import SessionStore
from events import Publisher, TaskQueued

SID = "sess-pacing"


class _CountingWrite:
    """An offload that writes in this thread and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, write: Callable[[], object]) -> None:
        self.calls += 1
        write()
        await trio.lowlevel.checkpoint()


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


async def test_one_worker_call_writes_every_chunk_including_those_published_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One event-loop round trip per chunk let a busy loop (one step submitting
    # 1,000 tasks) hold the worker to one chunk per turn: it fell behind and
    # back-pressure idled the loop. A call now writes until nothing is left.
    monkeypatch.setattr(_store_recorder, "DRAIN_SECONDS", 3600.0)  # not the bound here
    counting_write = _CountingWrite()
    publisher = Publisher()
    late = [f"late{n}" for n in range(3)]

    class PublishingStore(SessionStore):
        def write_rows(self, rows: StoreRows) -> None:
            super().write_rows(rows)
            if late:  # as the trio thread would, while the worker writes
                publisher.publish(TaskQueued(task_id=late.pop()))

    opened = _store()
    store = PublishingStore(opened.path, opened.conn)
    recorder = StoreRecorder(store, SID, soft_limit=100_000, offload=counting_write)
    publisher.add_listener(recorder)
    for n in range(3 * WRITE_CHUNK + 5):
        publisher.publish(TaskQueued(task_id=f"t{n}"))
    assert await recorder.flush() == 3 * WRITE_CHUNK + 5 + 3
    assert counting_write.calls == 1
    assert not recorder.pending
    assert len(store.tasks(SID)) == 3 * WRITE_CHUNK + 5 + 3


async def test_a_worker_call_is_bounded_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # So a cancelled recorder (the call cannot be abandoned) stops soon.
    monkeypatch.setattr(_store_recorder, "DRAIN_SECONDS", 0.0)
    counting_write = _CountingWrite()
    recorder = StoreRecorder(_store(), SID, soft_limit=100_000, offload=counting_write)
    publisher = Publisher()
    publisher.add_listener(recorder)
    for n in range(3 * WRITE_CHUNK + 5):
        publisher.publish(TaskQueued(task_id=f"t{n}"))
    assert await recorder.flush() == 3 * WRITE_CHUNK + 5
    assert counting_write.calls == 4  # a chunk per call, since each call's time is up at once


async def test_history_is_pruned_while_the_worker_never_catches_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Each worker call leaves something pending (a busy session): the recorder
    # must still stop to prune the history between calls.
    publisher = Publisher()
    calls = 0
    pruned_at: list[int] = []
    last_call = trio.Event()

    class PruneCountingStore(SessionStore):
        def prune_events(self, session_id: str, *, keep: int) -> int:
            pruned_at.append(calls)
            return super().prune_events(session_id, keep=keep)

    async def write_and_publish_more(write: Callable[[], object]) -> None:
        nonlocal calls
        calls += 1
        write()
        if calls < 100:
            publisher.publish(TaskQueued(task_id=f"t{calls}"))
        else:
            last_call.set()
        await trio.lowlevel.checkpoint()

    opened = _store()
    store = PruneCountingStore(opened.path, opened.conn)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_store_recorder(
                store,
                publisher,
                session_id=SID,
                history_keep=5,
                offload=write_and_publish_more,
                task_status=task_status,
            )
        )
        publisher.publish(TaskQueued(task_id="t0"))
        await last_call.wait()
        nursery.cancel_scope.cancel()
    assert pruned_at[:2] == [41, 82]  # every 40 writes (the prune is a worker call too)
    assert len(store.tasks(SID)) == 100
