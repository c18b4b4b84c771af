"""SIGINT and SIGTERM while a command runs: a graceful stop first, at once on the second."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import structlog
import trio

log = structlog.get_logger("runcast.api")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@attrs.define(eq=False)
class StopSignals:
    """SIGINT/SIGTERM while a command runs: the first asks for a graceful stop, a second
    one cancels :attr:`scope` (the whole command) at once."""

    received: str | None = None
    first: trio.Event = attrs.field(factory=trio.Event)
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    async def wait(self) -> str:
        """The name of the first signal, once it arrives."""
        await self.first.wait()
        assert self.received is not None
        return self.received

    async def _watch(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if self.received is None:
                self.received = name
                log.warning("stopping gracefully; send it again to stop at once", signal=name)
                self.first.set()
            else:
                log.warning("stopping at once", signal=name)
                self.scope.cancel()


@asynccontextmanager
async def watch_stop_signals() -> AsyncIterator[StopSignals]:
    """Catch SIGINT/SIGTERM for the whole block, teardown included."""
    stop = StopSignals()
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop._watch, signals)
            try:
                with stop.scope:
                    yield stop
            finally:
                nursery.cancel_scope.cancel()
