"""Where the store's blocking writes run: a trio worker thread, one at a time.

SQLite calls block, so the recorder and the lease heartbeat hand them to
:data:`Offload`, a coroutine function that runs one away from the trio thread
(tests pass one that runs it inline).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import trio

#: Runs a blocking write away from the trio thread; replaceable in tests.
Offload = Callable[[Callable[[], object]], Awaitable[None]]


async def to_worker_thread(write: Callable[[], object]) -> None:
    """The default :data:`Offload`: ``write`` in a trio worker thread."""
    await trio.to_thread.run_sync(write)


@attrs.define(eq=False)
class SerialOffload:
    """Runs store writes in a worker thread, one at a time.

    The recorder and the heartbeat write through one connection: the thread
    that uses it must be alone, and one's transaction must not open inside the
    other's (``cannot start a transaction within a transaction``).
    """

    offload: Offload = to_worker_thread
    _lock: trio.Lock = attrs.field(factory=trio.Lock)

    async def __call__(self, write: Callable[[], object]) -> None:
        async with self._lock:
            await self.offload(write)
