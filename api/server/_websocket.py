"""One WebSocket client: a reader task, a writer task and a keepalive task.

The reader answers each message in turn; the writer drains the connection's one
subscription and sends each item's pre-encoded ``wire`` text.  The writer is the
only task that waits on a slow client, and the subscription's bounded buffer
(conflation plus gap notices, see ``events``) is what keeps that wait from
reaching the publisher or other clients.

While the writer is idle (nothing queued) it lends the subscription a
direct-delivery hook: the publisher then writes each event's shared frame
(built once, ``_direct_writes``) straight to the socket with one non-blocking write,
and no task is woken.  The first frame the socket does not take whole ends
that until the writer has caught up: declined, it is queued as before; half
written, its rest is owed and the writer sends it before anything else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import attrs
import structlog
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from events import (
    SESSION_TOPIC,
    Gap,
    Published,
    Publisher,
    RuncastError,
    Subscription,
)

from ._access import Role
from ._config import ServerConfig
from ._direct_writes import DeliveryCounts, FrameCache, ReplayStream, direct_delivery
from ._exceptions import MessageError
from ._interfaces import ExecutorControls, SessionSource
from ._messages import (
    ClientMessage,
    Command,
    Ping,
    Subscribe,
    Unsubscribe,
    command_result_frame,
    error_frame,
    parse_message,
    pong_frame,
    subscribed_frame,
    unsubscribed_frame,
)

log = structlog.get_logger("runcast.api")

GOING_AWAY = 1001
COMMAND_STATUS = {
    "pause": "paused",
    "resume": "resumed",
    "cancel": "cancelled",
    "retry": "queued",
    "set_budget": "budget_set",
    "set_concurrency": "concurrency_set",
}


@attrs.define(eq=False)
class WebSocketSession:
    """The protocol state of one accepted WebSocket connection."""

    ws: WebSocketConnection
    role: Role
    publisher: Publisher
    session_source: SessionSource
    executor: ExecutorControls | None
    config: ServerConfig
    peer: str = "?"
    #: The stream trio-websocket writes through; with a socket inside, idle
    #: subscribers are written to directly.
    stream: ReplayStream | None = None
    frames: FrameCache = attrs.field(factory=FrameCache)
    counts: DeliveryCounts = attrs.field(factory=DeliveryCounts)
    close_code: int = 1000
    close_reason: str | None = None
    dropped_dead: bool = False
    _subscription: Subscription | None = None
    _subscription_changed: trio.Event = attrs.field(factory=trio.Event)
    _last_heard: float = attrs.field(factory=trio.current_time)
    _closing: bool = False
    _answering: bool = False
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    #: Scopes around the reader's and the keepalive's waits, so ``go_away`` stops
    #: them while idle but never in the middle of writing a frame.
    _idle_waits: set[trio.CancelScope] = attrs.field(factory=set)

    async def run(self) -> None:
        """Serve until the client leaves, stops answering pings, or ``go_away``."""
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_loop, nursery.cancel_scope)
                    nursery.start_soon(self._write_loop, nursery.cancel_scope)
                    nursery.start_soon(self._keepalive_loop)
        finally:
            self._switch_to(None)

    def go_away(self, code: int = GOING_AWAY, reason: str = "server shutting down") -> None:
        """Stop reading, send what is already queued, then end; the server closes with ``code``.

        Bound the wait: a client that does not read is cut off with :meth:`abort`.
        """
        self.close_code = code
        self.close_reason = reason
        self._closing = True
        for wait in self._idle_waits:
            wait.cancel()
        if self._subscription is not None:
            # Closed, it still yields what it holds, then ends the writer's loop.
            self._subscription.close()
        self._subscription_changed.set()

    @contextlib.contextmanager
    def _idle_wait(self) -> Iterator[trio.CancelScope]:
        with trio.CancelScope() as scope:
            if self._closing:
                scope.cancel()
            self._idle_waits.add(scope)
            try:
                yield scope
            finally:
                self._idle_waits.discard(scope)

    def abort(self) -> None:
        """End the session now, dropping whatever was still queued."""
        self._scope.cancel()

    @property
    def subscription(self) -> Subscription | None:
        return self._subscription

    # -- reader ------------------------------------------------------------
    async def _read_loop(self, done: trio.CancelScope) -> None:
        try:
            while not self._closing:
                message: str | bytes | None = None
                with self._idle_wait():
                    message = await self.ws.get_message()
                if message is None:
                    return  # go_away: stop reading
                self._last_heard = trio.current_time()
                # Events a command causes (or anything published meanwhile) are
                # queued, not written directly, so they follow the reply, as
                # when the writer, behind trio-websocket's send lock, sent them all.
                self._answering = True
                try:
                    await self._answer(message)
                finally:
                    self._answering = False
        except ConnectionClosed:
            done.cancel()

    async def _answer(self, message: str | bytes) -> None:
        try:
            parsed = parse_message(message)
        except MessageError as exc:
            await self.ws.send_message(error_frame(str(exc)))
            return
        await self._dispatch(parsed)

    async def _dispatch(self, message: ClientMessage) -> None:
        if isinstance(message, Ping):
            await self.ws.send_message(pong_frame())
        elif isinstance(message, Subscribe):
            await self._subscribe(message)
        elif isinstance(message, Unsubscribe):
            topic = self._subscription.topic if self._subscription is not None else None
            self._switch_to(None)
            await self.ws.send_message(unsubscribed_frame(topic))
        else:
            await self._command(message)

    async def _subscribe(self, message: Subscribe) -> None:
        try:
            subscription = self._open_subscription(message)
        except MessageError as exc:
            await self.ws.send_message(error_frame(str(exc), task_id=message.task_id))
            return
        # The old subscription stops first and the new one reaches the writer only
        # after "subscribed" is out, so the reply precedes everything it announces.
        self._switch_to(None)
        try:
            await self.ws.send_message(subscribed_frame(message.task_id, message.since))
        except BaseException:
            subscription.close()
            raise
        self._switch_to(subscription)

    def _open_subscription(self, message: Subscribe) -> Subscription:
        since = message.since
        newest = self.publisher.last_seq
        if since is not None and since > newest:
            # A seq this server never sent: most likely one from another server run.
            # Subscribing would replay nothing and hide that the client's view is wrong.
            digits = str(since)
            shown = digits if len(digits) <= 40 else f"{digits[:20]}... ({len(digits)} digits)"
            raise MessageError(
                f"since: {shown} is beyond the newest event (seq {newest}), so it is not "
                "from this server run; subscribe without since to start afresh"
            )
        buffer_size = self.config.subscription_buffer
        if message.task_id == SESSION_TOPIC:
            return self.session_source.subscribe_session(since=since, buffer_size=buffer_size)
        if self.executor is not None and not self.executor.has_task(message.task_id):
            raise MessageError(f"task_id: unknown task {message.task_id!r}")
        return self.publisher.subscribe(message.task_id, since=since, buffer_size=buffer_size)

    async def _command(self, command: Command) -> None:
        try:
            status = self._perform(command)
        except MessageError as exc:
            reply = error_frame(str(exc), action=command.action, task_id=command.task_id)
        else:
            reply = command_result_frame(command, status)
        await self.ws.send_message(reply)

    def _perform(self, command: Command) -> str:
        """Carry out ``command``; its status word, or ``MessageError`` saying why not."""
        if self.role is not Role.OPERATOR:
            log.warning("command refused", peer=self.peer, action=command.action, role="viewer")
            raise MessageError("forbidden: a viewer token may not send commands")
        executor = self.executor
        if executor is None:
            raise MessageError("no executor is attached to this server")
        log.info("command", peer=self.peer, action=command.action, task_id=command.task_id)
        try:
            if command.action == "pause":
                reason = f"websocket command from {self.peer}"
                executor.pause(by="operator", reason=reason, suspend=command.suspend)
            elif command.action == "resume":
                executor.resume(by="operator", reason=f"websocket command from {self.peer}")
            elif command.action == "cancel":
                if not executor.cancel(command.task_id, reason="cancelled by operator"):
                    return "already_ended"
            elif command.action == "retry":
                executor.retry(command.task_id)
            elif command.action == "set_concurrency":
                assert command.concurrency is not None
                reason = f"websocket command from {self.peer}"
                executor.set_concurrency(command.concurrency, by="operator", reason=reason)
            else:
                executor.set_budget(command.budget_usd, by="operator")
        except RuncastError as exc:
            raise MessageError(str(exc)) from exc
        return COMMAND_STATUS[command.action]

    @property
    def answering(self) -> bool:
        """A reply is being sent (:func:`direct_delivery` queues frames behind it)."""
        return self._answering

    @property
    def closed(self) -> bool:
        """The close frame is out or on its way."""
        return self.ws.closed is not None

    # -- writer ------------------------------------------------------------
    def _switch_to(self, subscription: Subscription | None) -> None:
        old, self._subscription = self._subscription, subscription
        if old is not None and old is not subscription:
            old.close()
        self._subscription_changed.set()
        self._subscription_changed = trio.Event()

    async def _write_loop(self, done: trio.CancelScope) -> None:
        try:
            while True:
                if self.stream is not None and self.stream.owed:
                    await self.stream.flush()  # the rest of a partial direct write
                    continue
                subscription = self._subscription
                if subscription is None:
                    if self._closing:
                        return  # everything queued was sent
                    await self._subscription_changed.wait()
                    continue
                try:
                    item = await self._next_item(subscription)
                except trio.EndOfChannel:
                    if subscription is self._subscription:
                        # Closed by go_away, or the publisher closed: nothing more comes.
                        self._subscription = None
                    continue
                if item is not None and subscription is self._subscription:
                    self.counts.queued += 1
                    await self.ws.send_message(item.wire)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            done.cancel()

    async def _next_item(self, subscription: Subscription) -> Published | Gap | None:
        """The next queued item; None when woken to send the rest of a partial write.

        While nothing is queued, the publisher writes to the socket directly.
        """
        try:
            return subscription.receive_nowait()
        except trio.WouldBlock:
            pass
        stream = self.stream
        if stream is None or not stream.can_write_now or self._closing:
            return await subscription.receive()
        with trio.CancelScope() as wake:
            subscription.set_direct(direct_delivery(self, subscription, stream, wake))
            try:
                return await subscription.receive()
            finally:
                subscription.set_direct(None)
        return None

    # -- keepalive ---------------------------------------------------------
    async def _keepalive_loop(self) -> None:
        interval = self.config.ping_interval
        while not self._closing:
            with self._idle_wait() as waiting:
                await trio.sleep_until(self._last_heard + interval)
            if waiting.cancelled_caught:
                return
            if trio.current_time() - self._last_heard < interval:
                continue
            with trio.move_on_after(self.config.ping_timeout):
                try:
                    await self.ws.ping()
                except ConnectionClosed:
                    return
                self._last_heard = trio.current_time()
                continue
            log.info("dropping unresponsive websocket client", peer=self.peer)
            self.dropped_dead = True
            self.abort()
            return
