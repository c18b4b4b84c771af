"""The full runcast pipeline as ``runcast run`` assembles it, for benchmarks to drive.

Publisher, SessionBroadcaster, RuncastMetrics and the SQLite store recorder on
a file, all in one nursery; the executor is opened by the caller inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Final

import attrs
import trio
from prometheus_client import CollectorRegistry

from api.store._recorder import DEFAULT_FLUSH_INTERVAL, StoreRecorder, serve_store_recorder
from api.store._store import SessionStore
from broadcaster import RuncastMetrics, SessionBroadcaster, serve_broadcaster
from events import Publisher

#: The listeners ``runcast run`` attaches to the publisher; the ablation drops some.
STAGES: Final = ("broadcaster", "metrics", "store")


@attrs.define(eq=False)
class Pipeline:
    publisher: Publisher
    session_id: str
    broadcaster: SessionBroadcaster | None = None
    metrics: RuncastMetrics | None = None
    recorder: StoreRecorder | None = None
    #: The recorder's back-pressure signal (it fell ``soft_limit`` writes behind).
    store_behind: bool = False
    _caught_up: trio.Event = attrs.field(factory=trio.Event)

    def on_backpressure(self, behind: bool) -> None:
        self.store_behind = behind
        if behind:
            self._caught_up = trio.Event()
        else:
            self._caught_up.set()

    async def wait_for_store(self) -> None:
        """Hold a producer while the store is behind, as ``runcast run`` holds task starts."""
        while self.store_behind:
            await self._caught_up.wait()

    async def wait_until_stored(self) -> None:
        """Wait until the recorder holds nothing and its last flush has finished."""
        recorder = self.recorder
        if recorder is None:
            await trio.lowlevel.checkpoint()
            return
        while True:
            written = recorder.written_events
            # Two flush intervals with nothing pending and nothing newly written:
            # no batch can still be in the worker thread.
            await trio.sleep(2 * DEFAULT_FLUSH_INTERVAL)
            if not recorder.pending and recorder.written_events == written:
                return

    def check_stored(self) -> None:
        """After the pipeline closed: everything recorded reached the store file."""
        if self.recorder is None:
            return
        if self.recorder.failure is not None:
            raise self.recorder.failure
        if self.recorder.pending:
            raise RuntimeError(f"{len(self.recorder.pending)} store writes were left pending")


@asynccontextmanager
async def open_pipeline(
    store_path: Path, *, interval: float = 10.0, stages: Collection[str] = STAGES
) -> AsyncIterator[Pipeline]:
    """Everything but the executor; leaving the block flushes and closes the store.

    The recorder's final flush runs as its service is cancelled, so the block
    exits only once every event is written.  ``stages`` picks which listeners
    run (all of them unless an ablation asks for fewer).
    """
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown pipeline stages {sorted(unknown)}; expected some of {STAGES}")
    pipeline = Pipeline(Publisher(), uuid.uuid4().hex)
    publisher = pipeline.publisher
    store = SessionStore.open(store_path) if "store" in stages else None
    try:
        if "metrics" in stages:
            pipeline.metrics = RuncastMetrics(CollectorRegistry(), publisher)
        if store is not None:
            store.begin_session(pipeline.session_id)
        async with trio.open_nursery() as nursery:
            if "broadcaster" in stages:
                pipeline.broadcaster = await nursery.start(
                    partial(
                        serve_broadcaster,
                        publisher,
                        metrics=pipeline.metrics,
                        interval=interval,
                        session_id=pipeline.session_id,
                    )
                )
            if store is not None:
                pipeline.recorder = await nursery.start(
                    partial(
                        serve_store_recorder,
                        store,
                        publisher,
                        session_id=pipeline.session_id,
                        on_backpressure=pipeline.on_backpressure,
                    )
                )
            yield pipeline
            nursery.cancel_scope.cancel()
    finally:
        if pipeline.metrics is not None:
            pipeline.metrics.close()
        publisher.close()
        if store is not None:
            store.close()
