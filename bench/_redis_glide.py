"""valkey-glide's async client under trio, for the Redis client benchmark.

Optional: importing this module raises ``ImportError`` when valkey-glide is not
installed, and ``_redis_clients`` then skips the glide half. glide 2.x runs
under trio through anyio: ``await GlideClient.create(config)`` inside
``trio.run`` (its futures are ``anyio.Event``s that its Rust core sets through a
pipe the trio loop watches). Every command goes over one multiplexed connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import version

import attrs
import trio

# Optional and not installed by `make test`: mypy then sees these names as Any,
# which is why every result below is annotated.
from glide import (  # type: ignore[import-not-found, unused-ignore]
    Batch,
    GlideClient,
    GlideClientConfiguration,
    NodeAddress,
    Script,
    StreamReadOptions,
)

from ._redis_adapters import Entry, Fields, StreamClient
from ._redis_server import RedisServer

#: glide's default (250 ms) would fail a round trip on a machine busy with other
#: jobs; redis-py has none. Blocking reads get their block time on top.
REQUEST_TIMEOUT_MS = 10_000


@attrs.define(eq=False)
class GlideStreamClient:
    client: GlideClient
    script: Script

    async def append(self, key: bytes, fields: Fields) -> bytes:
        entry_id: bytes | None = await self.client.xadd(key, list(fields))
        if entry_id is None:  # only with NOMKSTREAM, which is not used
            raise RuntimeError(f"XADD to {key!r} added nothing")
        return entry_id

    async def append_many(self, key: bytes, entries: Sequence[Fields]) -> None:
        batch = Batch(is_atomic=False)
        for fields in entries:
            batch.xadd(key, list(fields))
        await self.client.exec(batch, raise_on_error=True)

    async def read_after(
        self, key: bytes, last_id: bytes, block_ms: int, count: int
    ) -> list[Entry]:
        reply: Mapping[bytes, Mapping[bytes, list[list[bytes]]]] | None = await self.client.xread(
            {key: last_id}, StreamReadOptions(block_ms=block_ms, count=count)
        )
        if not reply:
            return []
        return [
            (entry_id, {field: value for field, value in pairs})
            for entry_id, pairs in reply[key].items()
        ]

    async def run_script(self, keys: Sequence[bytes], args: Sequence[bytes]) -> object:
        result: object = await self.client.invoke_script(
            self.script, keys=list(keys), args=list(args)
        )
        return result

    async def run_script_many(
        self, keys: Sequence[bytes], calls: Sequence[Sequence[bytes]]
    ) -> list[object]:
        # glide's Batch has no script call: EVALSHA by hash, as a pipeline of scripts
        # needs (the script is loaded first, by one invoke_script).
        sha: str = self.script.get_hash()
        head = [b"EVALSHA", sha.encode(), b"%d" % len(keys), *keys]
        batch = Batch(is_atomic=False)
        for args in calls:
            batch.custom_command([*head, *args])
        results: list[object] | None = await self.client.exec(batch, raise_on_error=True)
        return results or []

    async def length(self, key: bytes) -> int:
        length: int = await self.client.xlen(key)
        return length

    async def delete(self, keys: Sequence[bytes]) -> None:
        await self.client.delete(list(keys))


@asynccontextmanager
async def open_glide(server: RedisServer, script: str) -> AsyncIterator[StreamClient]:
    config = GlideClientConfiguration(
        [NodeAddress(server.host, server.port)], request_timeout=REQUEST_TIMEOUT_MS
    )
    client: GlideClient = await GlideClient.create(config)
    try:
        # glide's Script is untyped; it keeps the code so a NOSCRIPT reply can reload it.
        lua: Script = Script(script)  # type: ignore[no-untyped-call, unused-ignore]
        yield GlideStreamClient(client, lua)
    finally:
        with trio.CancelScope(shield=True):
            await client.close()


def glide_version() -> str:
    return f"valkey-glide {version('valkey-glide')}"
