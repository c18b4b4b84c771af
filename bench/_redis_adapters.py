"""The stream operations the Redis client benchmark times, over redis-py.

:class:`StreamClient` is what each measurement calls; the redis-py sync client
implements it twice: in a trio worker thread per call (what cluster mode does,
like the SQLite store's offload) and inline on the trio thread (a reference
only: it blocks the event loop for the whole round trip, which runcast cannot
afford). valkey-glide's implementation is in ``_redis_glide`` (optional).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

import attrs
import redis
import trio

from ._redis_server import RedisServer

#: One stream entry's fields, in order.
Fields = Sequence[tuple[bytes, bytes]]
#: An entry as read back: its id and its fields.
Entry = tuple[bytes, dict[bytes, bytes]]
T = TypeVar("T")


class StreamClient(Protocol):
    """One connection's worth of the event append/read path."""

    async def append(self, key: bytes, fields: Fields) -> bytes:
        """XADD one entry; its id."""
        ...

    async def append_many(self, key: bytes, entries: Sequence[Fields]) -> None:
        """XADD every entry in one pipelined round trip (not atomic)."""
        ...

    async def read_after(
        self, key: bytes, last_id: bytes, block_ms: int, count: int
    ) -> list[Entry]:
        """XREAD BLOCK: up to ``count`` entries after ``last_id``; [] on timeout."""
        ...

    async def run_script(self, keys: Sequence[bytes], args: Sequence[bytes]) -> object:
        """EVALSHA of the script the client was opened with."""
        ...

    async def run_script_many(
        self, keys: Sequence[bytes], calls: Sequence[Sequence[bytes]]
    ) -> list[object]:
        """EVALSHA once per ``calls`` item (its args), pipelined in one round trip."""
        ...

    async def length(self, key: bytes) -> int:
        """XLEN."""
        ...

    async def delete(self, keys: Sequence[bytes]) -> None: ...


#: Opens one client (one connection's worth) on a server, with a Lua script ready to run.
ClientOpener = Callable[[RedisServer, str], AbstractAsyncContextManager[StreamClient]]
Runner = Callable[[Callable[[], T]], Awaitable[T]]


async def _in_thread(call: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(call)


async def _inline(call: Callable[[], T]) -> T:
    await trio.lowlevel.checkpoint()
    return call()


@attrs.define(eq=False)
class RedisPyClient:
    """redis-py's sync client; each call run by ``run`` (a worker thread, or inline)."""

    client: redis.Redis
    script: Any  # redis.commands.core.Script: EVALSHA, SCRIPT LOAD on NOSCRIPT
    run: Runner[Any]

    async def append(self, key: bytes, fields: Fields) -> bytes:
        entry_id = await self.run(lambda: self.client.xadd(key, dict(fields)))
        return bytes(entry_id)

    async def append_many(self, key: bytes, entries: Sequence[Fields]) -> None:
        def send() -> None:
            pipeline = self.client.pipeline(transaction=False)
            for fields in entries:
                pipeline.xadd(key, dict(fields))
            pipeline.execute()

        await self.run(send)

    async def read_after(
        self, key: bytes, last_id: bytes, block_ms: int, count: int
    ) -> list[Entry]:
        reply = await self.run(
            lambda: self.client.xread({key: last_id}, count=count, block=block_ms)
        )
        return stream_entries(reply)

    async def run_script(self, keys: Sequence[bytes], args: Sequence[bytes]) -> object:
        return await self.run(lambda: self.script(keys=list(keys), args=list(args)))

    async def run_script_many(
        self, keys: Sequence[bytes], calls: Sequence[Sequence[bytes]]
    ) -> list[object]:
        def send() -> list[object]:
            pipeline = self.client.pipeline(transaction=False)
            for args in calls:
                self.script(keys=list(keys), args=list(args), client=pipeline)
            return list(pipeline.execute())

        results: list[object] = await self.run(send)
        return results

    async def length(self, key: bytes) -> int:
        return int(await self.run(lambda: self.client.xlen(key)))

    async def delete(self, keys: Sequence[bytes]) -> None:
        await self.run(lambda: self.client.delete(*keys))


def stream_entries(reply: object) -> list[Entry]:
    """XREAD's reply for one stream: ``[[key, entries]]`` (RESP2) or ``{key: [entries]}``."""
    if not reply:
        return []
    if isinstance(reply, Mapping):
        (streams,) = reply.values()
        entries = streams[0] if streams and isinstance(streams[0], list) else streams
    else:
        ((_key, entries),) = reply  # type: ignore[misc]
    return [(bytes(entry_id), dict(fields)) for entry_id, fields in entries]


def _opener(run: Runner[Any]) -> ClientOpener:
    @asynccontextmanager
    async def open_client(server: RedisServer, script: str) -> AsyncIterator[StreamClient]:
        client = redis.Redis(server.host, server.port)
        try:
            yield RedisPyClient(client, client.register_script(script), run)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(client.close)

    return open_client


open_redis_py_threads = _opener(_in_thread)
open_redis_py_inline = _opener(_inline)


def redis_py_version() -> str:
    return f"redis-py {redis.__version__}" + (" + hiredis" if _hiredis() else "")


def _hiredis() -> bool:
    from redis.utils import HIREDIS_AVAILABLE

    return bool(HIREDIS_AVAILABLE)
