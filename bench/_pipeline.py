"""The full runcast pipeline as ``runcast run`` assembles it, for benchmarks to drive.

Publisher, SessionBroadcaster, RuncastMetrics and the SQLite store recorder on
a file, all in one nursery; the executor is opened by the caller inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import trio
from prometheus_client import CollectorRegistry

from api._store import SessionStore
from api._store_recorder import StoreRecorder, serve_store_recorder
from broadcaster import RuncastMetrics, SessionBroadcaster, serve_broadcaster
from events import Publisher


@attrs.define(eq=False)
class Pipeline:
    publisher: Publisher
    broadcaster: SessionBroadcaster
    metrics: RuncastMetrics
    store: SessionStore
    recorder: StoreRecorder
    session_id: str

    def check_stored(self) -> None:
        """After the pipeline closed: everything recorded reached the store file."""
        if self.recorder.failure is not None:
            raise self.recorder.failure
        if self.recorder.pending:
            raise RuntimeError(f"{len(self.recorder.pending)} store writes were left pending")


@asynccontextmanager
async def open_pipeline(store_path: Path, *, interval: float = 10.0) -> AsyncIterator[Pipeline]:
    """Everything but the executor; leaving the block flushes and closes the store.

    The recorder's final flush runs as its service is cancelled, so the block
    exits only once every event is written.
    """
    session_id = uuid.uuid4().hex
    publisher = Publisher()
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    store = SessionStore.open(store_path)
    try:
        store.begin_session(session_id)
        async with trio.open_nursery() as nursery:
            broadcaster = await nursery.start(
                partial(
                    serve_broadcaster,
                    publisher,
                    metrics=metrics,
                    interval=interval,
                    session_id=session_id,
                )
            )
            recorder = await nursery.start(
                partial(serve_store_recorder, store, publisher, session_id=session_id)
            )
            yield Pipeline(publisher, broadcaster, metrics, store, recorder, session_id)
            nursery.cancel_scope.cancel()
    finally:
        metrics.close()
        publisher.close()
        store.close()
