"""``ClusterLink``: one session's Redis, through redis-py's sync client in trio threads.

The only module that imports ``redis``. Every call runs in a worker thread
(``trio.to_thread.run_sync``, its own ``CapacityLimiter``), like the SQLite store's
writes; blocking stream reads use their own client (connection pool), wait at most
``MAX_BLOCK_MS`` and are abandoned on cancel, so an abandoned thread ends soon.
Redis errors become ``RedisAuthError`` (credentials), ``RedisUnavailable`` (retry)
or ``ClusterError``, each counted in ``errors[op]``; the password never shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import redis
import redis.exceptions
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from executor import CommandSpec

from ._exceptions import ClusterError, RedisAuthError, RedisUnavailable
from ._keys import SessionKeys, spec_from_json
from ._replies import (
    parse_appends,
    parse_claims,
    parse_control,
    parse_control_entries,
    parse_first_seq,
    parse_state,
    parse_stream_events,
)
from ._scripts import Scripts, append_args, control_args, load_scripts, submit_args
from ._tls import tls_options, tls_outage_hint, tls_refusal
from ._url import RedisTarget
from ._values import (
    AppendRequest,
    AppendResult,
    Claim,
    ClusterState,
    ControlCommand,
    ControlEntry,
    ControlResult,
    QueuedTask,
    StreamEvent,
    SubmitSettings,
)

T = TypeVar("T")
_Streams = dict[bytes | str | memoryview, int | bytes | str | memoryview]
#: A blocking read waits at most this long, so a thread abandoned on cancel ends soon.
MAX_BLOCK_MS = 1000
#: Requests per run of the append script: Redis runs nothing else meanwhile (~1 ms).
APPEND_CHUNK = 100
#: Threads that may talk to Redis at once per link (blocking reads have their own).
THREADS = 4
_AUTH_WORDS = ("WRONGPASS", "NOAUTH", "NOPERM", "invalid username-password")
#: NOPERM, and what Redis 7 says when a script calls a command the ACL forbids.
_ACL_WORDS = ("NOPERM", "The user executing the script can't run")
_UNAVAILABLE_WORDS = ("LOADING", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN")


def check_instance(instance: str) -> str:
    """A producer/worker instance id: leases are ``<instance>|<token>``, so no ``|``."""
    if not instance or "|" in instance or len(instance) > 200:
        raise ClusterError(f"instance id {instance[:80]!r}: 1-200 characters, no '|'")
    return instance


def make_client(target: RedisTarget, *, client_name: str, timeout: float) -> redis.Redis:
    """A sync client for ``target``; ``timeout``: the socket timeout (a read may block)."""
    # CLIENT SETNAME refuses spaces and newlines; the name is only a label in CLIENT LIST.
    client_name = "".join(c if c.isprintable() and not c.isspace() else "_" for c in client_name)
    return redis.Redis(
        host=target.host,
        port=target.port,
        db=target.db,
        username=target.username,
        password=target.password,
        client_name=client_name,
        **tls_options(target),
        decode_responses=True,
        socket_connect_timeout=5.0,
        socket_timeout=timeout,
        health_check_interval=30,
        retry=_retry_once(target),
    )


def _retry_once(target: RedisTarget) -> Retry:
    """One immediate retry replaces a pooled connection a Redis restart broke; longer
    waits are the callers' (capped backoff, buffering), not a hidden sleep here."""
    retry = Retry(NoBackoff(), 1)
    # Not a TLS refusal: a retry would only meet it again, or hide it behind the EOF of
    # a server that already hung up (a missing client certificate). redis-py versions
    # without this hook retry once more, which is harmless.
    retry.is_retryable = lambda error: tls_refusal(error, target) is None
    return retry


@attrs.define(eq=False)
class ClusterLink:
    """One session's keys on one Redis; see the module docstring."""

    target: RedisTarget
    keys: SessionKeys
    _client: redis.Redis = attrs.field(repr=False)
    _blocking: redis.Redis = attrs.field(repr=False)
    _scripts: Scripts = attrs.field(repr=False)
    #: Failed calls by operation (``runcast_redis_errors_total{op}``).
    errors: Counter[str] = attrs.field(factory=Counter)
    _limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(THREADS))
    _read_limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(THREADS))

    # -- the calls -------------------------------------------------------------
    async def ping(self) -> None:
        await self._run("ping", self._client.ping)

    async def submit(
        self, instance: str, tasks: Sequence[QueuedTask], *, settings: SubmitSettings
    ) -> int:
        """Enqueue the tasks not yet in the session; returns how many were new."""
        args = submit_args(check_instance(instance), tasks, settings)
        return int(await self._script("submit", args))

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Append in order (one pipeline of script calls, ``APPEND_CHUNK`` requests each);
        each is ok, dup or fenced."""
        if not requests:
            return []
        for request in requests:
            check_instance(request.src)
        chunks = [requests[i : i + APPEND_CHUNK] for i in range(0, len(requests), APPEND_CHUNK)]

        def call() -> list[Any]:
            if len(chunks) == 1:
                return [self._scripts.call("append", self.keys, append_args(chunks[0]))]
            pipe = self._client.pipeline(transaction=False)
            for chunk in chunks:
                self._scripts.call("append", self.keys, append_args(chunk), client=pipe)
            return pipe.execute()

        replies = await self._run("append", call)
        return [result for reply in replies for result in parse_appends(reply)]

    async def claim(self, instance: str, max_n: int, lease_ms: int) -> list[Claim]:
        """Up to ``max_n`` tasks: first those whose holder stopped renewing, then new ones."""
        if max_n <= 0:
            return []
        args = (check_instance(instance), max_n, lease_ms)
        return parse_claims(await self._script("claim", args))

    async def renew(self, instance: str, task_ids: Sequence[str], lease_ms: int) -> list[str]:
        """Renew the leases (and this worker's heartbeat); returns the ones it lost."""
        args = (check_instance(instance), lease_ms, *task_ids)
        return [str(task_id) for task_id in await self._script("renew", args)]

    async def release(self, instance: str, task_ids: Sequence[str]) -> None:
        """Hand the tasks back: the next claim (anyone's) takes them at once."""
        if task_ids:
            args = (check_instance(instance), *task_ids)
            await self._script("release", args)

    async def control(self, command: ControlCommand) -> ControlResult:
        return parse_control(await self._script("control", control_args(command)))

    async def read_events(
        self, after: str, *, count: int, block_ms: int | None
    ) -> list[StreamEvent]:
        """Up to ``count`` events after entry id ``after`` ("0" from the start)."""
        streams: _Streams = {self.keys.events: after}
        if block_ms is None:
            reply = await self._run("read_events", lambda: self._client.xread(streams, count))
        else:
            reply = await self._read_blocking("read_events", streams, count, block_ms)
        return parse_stream_events(reply)

    async def read_control(self, after: str, *, block_ms: int) -> list[ControlEntry]:
        """Commands after entry id ``after``; take ``after`` from ``control_tail()``.

        ``"$"`` works too but waits from the moment of this call: a command added
        between two calls with ``"$"`` would be missed.
        """
        streams: _Streams = {self.keys.control: after}
        reply = await self._read_blocking("read_control", streams, 100, block_ms)
        return parse_control_entries(reply)

    async def control_tail(self) -> str:
        """The id of the control stream's last entry ("0-0" when empty): read after it."""

        def call() -> str:
            last = self._client.xrevrange(self.keys.control, count=1)
            return str(last[0][0]) if last else "0-0"

        return await self._run("read_control", call)

    async def state(self) -> ClusterState:
        return parse_state(await self._script("state", ()))

    async def spec(self, task_id: str) -> CommandSpec:
        text = await self._run("spec", lambda: self._client.hget(self.keys.specs, task_id))
        if text is None:
            raise ClusterError(f"task {task_id!r}: no spec in session {self.keys.name!r}")
        return spec_from_json(str(text))

    async def first_seq(self) -> int | None:
        """The seq of the oldest event the stream still holds (None: it is empty)."""
        first = await self._run("first_seq", lambda: self._client.xrange(self.keys.events, count=1))
        return parse_first_seq(first)

    async def forget_worker(self, instance: str) -> None:
        """A worker's graceful exit: it no longer counts as live."""

        def call() -> None:
            pipe = self._client.pipeline(transaction=False)
            pipe.zrem(self.keys.workers, instance)
            pipe.hdel(self.keys.appended, instance)
            pipe.execute()

        await self._run("forget_worker", call)

    # -- threads and errors ---------------------------------------------------------
    async def _script(self, name: str, args: Sequence[Any]) -> Any:
        return await self._run(name, lambda: self._scripts.call(name, self.keys, args))

    async def _run(self, op: str, call: Callable[[], T]) -> T:
        try:
            return await trio.to_thread.run_sync(self._translating(op, call), limiter=self._limiter)
        except ClusterError:
            self.errors[op] += 1
            raise

    async def _read_blocking(self, op: str, streams: _Streams, count: int, block_ms: int) -> Any:
        block = max(1, min(block_ms, MAX_BLOCK_MS))
        call = self._translating(op, lambda: self._blocking.xread(streams, count, block))
        try:
            return await trio.to_thread.run_sync(
                call, limiter=self._read_limiter, abandon_on_cancel=True
            )
        except ClusterError:
            self.errors[op] += 1
            raise

    def _translating(self, op: str, call: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            try:
                return call()
            except redis.exceptions.RedisError as exc:
                raise translate_error(op, self.target, exc) from exc

        return run

    def close(self) -> None:
        self._client.close()
        self._blocking.close()


def translate_error(op: str, target: RedisTarget, exc: redis.exceptions.RedisError) -> ClusterError:
    """Our error for redis-py's ``exc``; its text is kept, the password blanked out."""
    text = str(exc)
    if target.password:
        text = text.replace(target.password, "***")
    where = f"Redis {op} at {target}"
    tls_problem = tls_refusal(exc, target)
    if tls_problem is not None:
        return RedisAuthError(f"{where}: {tls_problem}")
    if isinstance(exc, redis.exceptions.NoPermissionError) or text.startswith(_ACL_WORDS):
        user = target.username or "default"
        reason = text.removeprefix("NOPERM").lstrip()
        return RedisAuthError(f"{where}: the ACL of user {user!r} forbids it (NOPERM: {reason})")
    refused = redis.exceptions.AuthenticationError
    if isinstance(exc, refused) or (
        isinstance(exc, redis.exceptions.ResponseError) and text.startswith(_AUTH_WORDS)
    ):
        return RedisAuthError(f"{where}: authentication refused ({text})")
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError) or (
        isinstance(exc, redis.exceptions.ResponseError) and text.startswith(_UNAVAILABLE_WORDS)
    ):
        return RedisUnavailable(f"{where}: unavailable ({text}){tls_outage_hint(exc, target)}")
    return ClusterError(f"{where}: {text}")


@asynccontextmanager
async def open_link(
    target: RedisTarget, keys: SessionKeys, *, client_name: str = "runcast"
) -> AsyncIterator[ClusterLink]:
    """A link to ``keys``' session on ``target``; PINGs first (auth errors show here)."""
    # A blocking read waits up to MAX_BLOCK_MS; its socket must wait longer than that.
    client = make_client(target, client_name=client_name, timeout=10.0)
    blocking = make_client(
        target, client_name=f"{client_name}:read", timeout=10.0 + MAX_BLOCK_MS / 1000
    )
    link = ClusterLink(target, keys, client, blocking, load_scripts(client))
    try:
        await link.ping()
        yield link
    finally:
        link.close()
