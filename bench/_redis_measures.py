"""The seven measurements of the Redis client benchmark, one client library at a time.

Each opens its own client(s) with the given opener, warms up, times, checks that
what it sent arrived (so a broken client cannot pass for a fast one) and deletes
its keys. Latencies are ``time.perf_counter`` differences in this process; CPU is
this process's (``time.process_time``: every thread, glide's Rust core included),
not the server's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import attrs
import trio

from events import EventCodec, TaskUsage

from ._redis_adapters import ClientOpener, Entry, Fields, StreamClient
from ._redis_server import RedisServer

#: One session's keys, with the hash tag cluster mode uses (one Cluster slot).
EVENTS_KEY = b"runcast:{bench}:events"
SEEN_KEY = b"runcast:{bench}:seen"
SEQ_KEY = b"runcast:{bench}:seq"
#: The append path's shape: drop a duplicate by its idempotency key, take the
#: next seq, append, trim. What the cluster's script does, give or take fields.
APPEND_SCRIPT = """
if redis.call('HSETNX', KEYS[2], ARGV[1], '1') == 0 then return false end
local seq = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'seq', seq, 'e', ARGV[2])
return seq
"""
STREAM_BOUND = b"100000"
READ_BLOCK_MS = 1_000
READ_COUNT = 1_000


class MeasureError(RuntimeError):
    """A client lost or changed what it was given: its figures would mean nothing."""


def sample_event() -> bytes:
    """A real ``task_usage`` frame as runcast encodes it (~340 bytes)."""
    usage = TaskUsage(
        task_id="task-0042",
        model="claude-sonnet-4-5",
        provider="anthropic",
        input_tokens=12_345,
        output_tokens=2_345,
        cache_read_tokens=45_678,
        cache_write_tokens=1_234,
        cost_usd=0.0123456,
        cost_source="computed",
        source="claude-code",
    )
    return EventCodec().encode(17, datetime.now(UTC), usage).encode()


EVENT = sample_event()


@attrs.frozen
class Sample:
    """One measurement of one client in one round."""

    events: int
    seconds: float
    cpu_seconds: float
    #: Per event (or per call): seconds; empty where only throughput is measured.
    latencies: tuple[float, ...] = ()

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds / self.events * 1e6


@attrs.frozen
class Sizes:
    warmup: int
    appends: int
    batches: int
    batch_size: int
    stream_rate: float
    stream_seconds: float
    scripts: int
    appenders: int
    appends_each: int
    backlog: int


Measure = Callable[[ClientOpener, RedisServer, Sizes], Awaitable[Sample]]


async def _expect_length(client: StreamClient, expected: int, what: str) -> None:
    length = await client.length(EVENTS_KEY)
    await client.delete([EVENTS_KEY, SEEN_KEY, SEQ_KEY])
    if length != expected:
        raise MeasureError(f"{what}: the stream holds {length} entries, expected {expected}")


async def _timed_calls(call: Callable[[int], Awaitable[object]], count: int) -> Sample:
    latencies: list[float] = []
    cpu_started = time.process_time()
    started = time.perf_counter()
    for index in range(count):
        before = time.perf_counter()
        await call(index)
        latencies.append(time.perf_counter() - before)
    seconds = time.perf_counter() - started
    return Sample(count, seconds, time.process_time() - cpu_started, tuple(latencies))


async def measure_append(open_client: ClientOpener, server: RedisServer, sizes: Sizes) -> Sample:
    """(a) XADD one event at a time, each awaited before the next."""
    fields: Fields = ((b"e", EVENT),)
    async with open_client(server, APPEND_SCRIPT) as client:
        for _ in range(sizes.warmup):
            await client.append(EVENTS_KEY, fields)
        sample = await _timed_calls(lambda _: client.append(EVENTS_KEY, fields), sizes.appends)
        await _expect_length(client, sizes.warmup + sizes.appends, "append")
    return sample


async def measure_batch(open_client: ClientOpener, server: RedisServer, sizes: Sizes) -> Sample:
    """(b) XADD pipelined, ``batch_size`` events a round trip."""
    batch: list[Fields] = [((b"e", EVENT),)] * sizes.batch_size
    async with open_client(server, APPEND_SCRIPT) as client:
        await client.append_many(EVENTS_KEY, batch)
        timed = await _timed_calls(lambda _: client.append_many(EVENTS_KEY, batch), sizes.batches)
        await _expect_length(client, (1 + sizes.batches) * sizes.batch_size, "batch")
    return attrs.evolve(timed, events=sizes.batches * sizes.batch_size)


async def measure_script(open_client: ClientOpener, server: RedisServer, sizes: Sizes) -> Sample:
    """(d) EVALSHA of the append script, one call at a time."""
    keys = (EVENTS_KEY, SEEN_KEY, SEQ_KEY)

    async def append(index: int) -> object:
        return await client.run_script(keys, (b"w1:%d" % index, EVENT, STREAM_BOUND))

    async with open_client(server, APPEND_SCRIPT) as client:
        for index in range(-sizes.warmup, 0):
            await append(index)
        sample = await _timed_calls(append, sizes.scripts)
        duplicate = await append(0)
        if duplicate is not None:
            raise MeasureError(f"script: a duplicate idempotency key appended ({duplicate!r})")
        await _expect_length(client, sizes.warmup + sizes.scripts, "script")
    return sample


async def measure_script_batch(
    open_client: ClientOpener, server: RedisServer, sizes: Sizes
) -> Sample:
    """(f) EVALSHA of the append script pipelined, ``batch_size`` a round trip.

    What cluster mode's forwarder does with a worker's buffered events.
    """
    keys = (EVENTS_KEY, SEEN_KEY, SEQ_KEY)
    calls = iter(range(-sizes.batch_size, sizes.batches * sizes.batch_size))

    def next_batch() -> list[tuple[bytes, ...]]:
        return [(b"w1:%d" % next(calls), EVENT, STREAM_BOUND) for _ in range(sizes.batch_size)]

    async def send(_: int) -> None:
        seqs = await client.run_script_many(keys, next_batch())
        if None in seqs:
            raise MeasureError("script-batch: a fresh idempotency key was taken for a duplicate")

    async with open_client(server, APPEND_SCRIPT) as client:
        await client.run_script(keys, (b"load", EVENT, STREAM_BOUND))  # SCRIPT LOAD
        await send(-1)
        timed = await _timed_calls(send, sizes.batches)
        await _expect_length(client, 1 + (1 + sizes.batches) * sizes.batch_size, "script-batch")
    return attrs.evolve(timed, events=sizes.batches * sizes.batch_size)


async def measure_catch_up(open_client: ClientOpener, server: RedisServer, sizes: Sizes) -> Sample:
    """(g) XREAD of a backlog of ``backlog`` events, ``READ_COUNT`` a call.

    What a serve node does when it starts, or falls behind: fold the stream's
    tail as fast as it can be read. Latency: per call (``READ_COUNT`` events).
    """
    chunk: list[Fields] = [((b"e", EVENT),)] * READ_COUNT
    async with open_client(server, APPEND_SCRIPT) as client:
        start_id = await client.append(EVENTS_KEY, ((b"start", b""),))
        calls = max(1, sizes.backlog // READ_COUNT)
        for _ in range(calls):
            await client.append_many(EVENTS_KEY, chunk)
        total = calls * READ_COUNT
        last_id, read = start_id, 0

        async def read_some(_: int) -> None:
            nonlocal last_id, read
            entries = await client.read_after(EVENTS_KEY, last_id, READ_BLOCK_MS, READ_COUNT)
            last_id, read = entries[-1][0], read + len(entries)

        timed = await _timed_calls(read_some, calls)
        if read != total:
            raise MeasureError(f"catch-up: read {read} entries of {total}")
        await _expect_length(client, total + 1, "catch-up")
    return attrs.evolve(timed, events=total)


async def measure_concurrent(
    open_client: ClientOpener, server: RedisServer, sizes: Sizes
) -> Sample:
    """(e) ``appenders`` trio tasks XADD one at a time each, through one client."""
    fields: Fields = ((b"e", EVENT),)
    latencies: list[float] = []

    async def appender() -> None:
        for _ in range(sizes.appends_each):
            before = time.perf_counter()
            await client.append(EVENTS_KEY, fields)
            latencies.append(time.perf_counter() - before)

    async with open_client(server, APPEND_SCRIPT) as client:
        for _ in range(sizes.warmup):
            await client.append(EVENTS_KEY, fields)
        cpu_started = time.process_time()
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(sizes.appenders):
                nursery.start_soon(appender)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        total = sizes.appenders * sizes.appends_each
        await _expect_length(client, sizes.warmup + total, "concurrent")
    return Sample(total, seconds, cpu, tuple(latencies))


async def measure_stream(open_client: ClientOpener, server: RedisServer, sizes: Sizes) -> Sample:
    """(c) A writer appends at ``stream_rate``; a reader on XREAD BLOCK times each arrival.

    Latency: from just before the writer's XADD to the reader's task holding the
    entry (for redis-py: back on the trio thread). The first ``warmup`` events
    are not counted.
    """
    total = sizes.warmup + round(sizes.stream_rate * sizes.stream_seconds)
    latencies: list[float] = []
    async with open_client(server, APPEND_SCRIPT) as writer:
        async with open_client(server, APPEND_SCRIPT) as reader:
            start_id = await writer.append(EVENTS_KEY, ((b"start", b""),))
            cpu_started = time.process_time()
            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_read_until_end, reader, start_id, latencies)
                await _write_paced(writer, total, sizes)
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        counted = total - sizes.warmup
        if len(latencies) != counted:
            raise MeasureError(f"stream: the reader got {len(latencies)} events of {counted}")
        await _expect_length(writer, total + 2, "stream")
    return Sample(total, seconds, cpu, tuple(latencies))


async def _write_paced(writer: StreamClient, total: int, sizes: Sizes) -> None:
    period = 1 / sizes.stream_rate
    start = trio.current_time()
    for index in range(total):
        await trio.sleep_until(start + index * period)
        sent = b"%d" % time.perf_counter_ns()
        counted = b"1" if index >= sizes.warmup else b"0"
        await writer.append(EVENTS_KEY, ((b"t", sent), (b"c", counted), (b"e", EVENT)))
    await writer.append(EVENTS_KEY, ((b"end", b""),))


async def _read_until_end(reader: StreamClient, last_id: bytes, latencies: list[float]) -> None:
    while True:
        entries: list[Entry] = await reader.read_after(
            EVENTS_KEY, last_id, READ_BLOCK_MS, READ_COUNT
        )
        arrived = time.perf_counter_ns()
        for entry_id, fields in entries:
            last_id = entry_id
            if b"end" in fields:
                return
            if fields[b"c"] == b"1":
                latencies.append((arrived - int(fields[b"t"])) / 1e9)


MEASURES: dict[str, Measure] = {
    "append": measure_append,
    "batch": measure_batch,
    "stream": measure_stream,
    "script": measure_script,
    "script-batch": measure_script_batch,
    "concurrent": measure_concurrent,
    "catch-up": measure_catch_up,
}
