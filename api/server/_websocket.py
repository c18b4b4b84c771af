"""One WebSocket client: one task while idle, a second only while frames are queued.

The connection's own task reads: it answers each message in turn, and its
wait for the next one is also the keepalive (nothing heard for
``ping_interval``: a ping, then ``ping_timeout`` to hear anything back).
Frames for the client take one of two paths:

* While nothing is queued the session lends its subscription a hook
  (:meth:`WebSocketSession._deliver`): the publisher's own call writes each
  event's shared frame (built once, ``_direct_writes``) to the socket with one
  non-blocking write, and no task is woken.
* The first frame the socket does not take whole is queued instead, and a
  writer task is started that sends the queue (the rest of a half-written
  frame first) and ends, lending the hook again, once it has caught up.  It is
  the only task that waits on a slow client; the subscription's bounded
  buffer (conflation plus gap notices, see ``events``) keeps that wait from
  reaching the publisher or other clients.

A client that takes nothing is cut off by the keepalive: the ping waits behind
the writer's blocked send (one lock keeps frames whole) and times out.  The
reader's own sends (replies, pongs) are bounded the same way.  A subscribe whose
``since`` a serve node has not read yet waits in a task of its own (``_ws_since``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import attrs
import structlog
import trio
from wsproto.events import CloseConnection
from wsproto.events import Ping as PingFrame

from events import SESSION_TOPIC, Published, Publisher, Subscription

from ._access import Role
from ._config import ServerConfig
from ._direct_writes import DeliveryCounts, FrameCache, Offer, ReplayStream, offer_frame
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
from ._ws_commands import perform_command
from ._ws_since import CatchesUp, beyond_newest, wait_for_since
from ._ws_wire import RECEIVE_CHUNK, WebSocketWire, WireEvent

log = structlog.get_logger("runcast.api")

GOING_AWAY = 1001
_STREAM_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


class _Dead(Exception):
    """The client did not answer in time (see ``WebSocketSession._drop_dead``)."""


@attrs.define(eq=False)
class WebSocketSession:
    """The protocol state of one accepted WebSocket connection."""

    wire: WebSocketWire
    role: Role
    publisher: Publisher
    session_source: SessionSource
    executor: ExecutorControls | None
    config: ServerConfig
    peer: str = "?"
    frames: FrameCache = attrs.field(factory=FrameCache)
    counts: DeliveryCounts = attrs.field(factory=DeliveryCounts)
    close_code: int = 1000
    close_reason: str | None = None
    dropped_dead: bool = False
    _subscription: Subscription | None = None
    _last_heard: float = attrs.field(factory=trio.current_time)
    _closing: bool = False
    _aborted: bool = False
    _answering: bool = False
    #: The session's nursery: its cancel scope is ``abort``'s, the writer runs in it.
    _nursery: trio.Nursery | None = None
    #: The nursery's body was left (see ``run``): no writer may start any more.
    _body_done: bool = False
    _writing: bool = False
    #: The reader's wait for the client, which ``go_away`` cuts short; never a send.
    _idle_wait: trio.CancelScope | None = None
    #: A subscribe waiting for this node to read up to its since (``_ws_since``).
    _since_wait: trio.CancelScope | None = None
    #: Held while a subscription is replaced: its reply and the switch go together.
    _switching: trio.StrictFIFOLock = attrs.field(factory=trio.StrictFIFOLock)

    @property
    def stream(self) -> ReplayStream:
        return self.wire.stream

    async def run(self) -> None:
        """Serve until the client leaves, stops answering pings, or ``go_away``."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._aborted:
                    nursery.cancel_scope.cancel()
                try:
                    await self._read_loop()
                except _Dead:
                    self._drop_dead()
                except _STREAM_GONE:
                    pass  # the client left without a close frame
                finally:
                    # No writer starts from here on: once this body is left the nursery
                    # takes no new task, and a publish may still reach ``_deliver`` while
                    # the nursery waits for a writer.
                    self._body_done = True
                if not self._closing:
                    nursery.cancel_scope.cancel()  # the client left: nothing more to send
                # Closing: the writer, if running, sends what is queued, then ends.
        finally:
            self._nursery = None
            self._switch_to(None)

    def go_away(self, code: int = GOING_AWAY, reason: str = "server shutting down") -> None:
        """Stop reading, send what is already queued, then end; the server closes with ``code``.

        Bound the wait: a client that does not read is cut off with :meth:`abort`.
        """
        self.close_code = code
        self.close_reason = reason
        self._closing = True
        if self._idle_wait is not None:
            self._idle_wait.cancel()
        self._stop_since_wait()
        if self._subscription is not None:
            # Closed, it still yields what it holds, then ends the writer's loop.
            self._subscription.close()

    def abort(self) -> None:
        """End the session now, dropping whatever was still queued."""
        self._aborted = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _drop_dead(self) -> None:
        log.info("dropping unresponsive websocket client", peer=self.peer)
        self.dropped_dead = True
        self.abort()

    @property
    def subscription(self) -> Subscription | None:
        return self._subscription

    # -- reader ------------------------------------------------------------
    async def _read_loop(self) -> None:
        wire = self.wire
        for event in wire.events():  # anything sent right behind the handshake
            if not await self._on_event(event):
                return
        while not self._closing:
            data = await self._receive()
            if data is None:
                return  # go_away: stop reading
            # Any bytes will do: a client sending a large message slowly is alive.
            self._last_heard = trio.current_time()
            wire.receive_data(data)
            if wire.lost:
                return
            for event in wire.events():
                if not await self._on_event(event):
                    return

    async def _receive(self) -> bytes | None:
        """The next bytes from the client; None once ``go_away`` stopped the wait.

        After ``ping_interval`` of silence, a ping; raises ``_Dead`` if nothing
        comes back within ``ping_timeout``.
        """
        data = await self._wait_for_client(self._last_heard + self.config.ping_interval)
        if data is not None or self._closing:
            return data
        with trio.move_on_after(self.config.ping_timeout):
            await self.wire.send(PingFrame(payload=b"keepalive"))
            return await self._wait_for_client(float("inf"))
        raise _Dead

    async def _wait_for_client(self, deadline: float) -> bytes | None:
        """Bytes from the client, or None at ``deadline`` or once ``go_away`` cut it short.

        Only this wait is cut short, never a send: a frame is never left half out.
        """
        # A plain scope, not a context manager of ours: this wait is what an idle
        # connection holds, thousands at once.
        wait = self._idle_wait = trio.CancelScope(deadline=deadline)
        if self._closing:
            wait.cancel()
        try:
            with wait:
                return await self.stream.receive_some(RECEIVE_CHUNK)
        finally:
            self._idle_wait = None
        return None

    async def _on_event(self, event: WireEvent) -> bool:
        """Handle one message or control frame; False once the connection is closing."""
        if isinstance(event, str | bytes):
            # Events a command causes (or anything published meanwhile) are
            # queued, not written directly, so they follow the reply.
            self._answering = True
            try:
                await self._answer(event)
            finally:
                self._answering = False
        elif isinstance(event, PingFrame):
            with self._keepalive_bound():
                await self.wire.send(event.response())
        elif isinstance(event, CloseConnection):
            self._switch_to(None)
            with self._keepalive_bound():
                await self.wire.answer_close(event)
            return False
        return True  # a pong: heard, nothing more

    @contextlib.contextmanager
    def _keepalive_bound(self) -> Iterator[None]:
        """Bound a send as a keepalive ping would be: ``_Dead`` if the client takes
        nothing for ``ping_interval + ping_timeout`` since it was last heard."""
        limit = self._last_heard + self.config.ping_interval + self.config.ping_timeout
        with trio.move_on_at(limit) as bound:
            yield
        if bound.cancelled_caught:
            raise _Dead

    async def _reply(self, text: str) -> None:
        with self._keepalive_bound():
            await self.wire.send_text(text)

    async def _answer(self, message: str | bytes) -> None:
        try:
            parsed = parse_message(message)
        except MessageError as exc:
            await self._reply(error_frame(str(exc)))
            return
        await self._dispatch(parsed)

    async def _dispatch(self, message: ClientMessage) -> None:
        if isinstance(message, Ping):
            await self._reply(pong_frame())
        elif isinstance(message, Subscribe | Unsubscribe):
            self._stop_since_wait()  # superseded by this newer message
            async with self._switching:
                if isinstance(message, Unsubscribe):
                    topic = self._subscription.topic if self._subscription is not None else None
                    self._switch_to(None)
                    await self._reply(unsubscribed_frame(topic))
                elif not self._wait_for_since(message):
                    await self._subscribe(message)
        else:
            await self._command(message)

    async def _subscribe(self, message: Subscribe) -> None:
        try:
            subscription = self._open_subscription(message)
        except MessageError as exc:
            await self._reply(error_frame(str(exc), task_id=message.task_id))
            return
        # The old subscription stops first and the new one reaches the writer only
        # after "subscribed" is out, so the reply precedes everything it announces.
        self._switch_to(None)
        try:
            await self._reply(subscribed_frame(message.task_id, message.since))
        except BaseException:
            subscription.close()
            raise
        self._switch_to(subscription)
        self._start_writer()  # the snapshot, and any replay, are queued

    def _wait_for_since(self, message: Subscribe) -> bool:
        """Whether ``message`` waits, in a task of its own while the reader goes on,
        for this node (one that follows a stream: ``CatchesUp``) to read its since."""
        publisher, since, nursery = self.publisher, message.since, self._nursery
        if since is None or since <= publisher.last_seq or nursery is None:
            return False
        if not isinstance(publisher, CatchesUp):
            return False  # a single process: a since it never sent is refused at once
        self._since_wait = scope = trio.CancelScope()
        nursery.start_soon(self._subscribe_when_read, message, publisher, scope)
        return True

    async def _subscribe_when_read(
        self, message: Subscribe, publisher: CatchesUp, scope: trio.CancelScope
    ) -> None:
        assert message.since is not None
        refusal = None
        with scope:
            refusal = await wait_for_since(publisher, message.since)
        if scope.cancelled_caught:
            return  # a newer subscribe or unsubscribe took over, or the connection closes
        # Only sends from here on, never cut short: a frame is never left half out.
        try:
            async with self._switching:
                if refusal is None:
                    await self._subscribe(message)
                else:
                    await self._reply(error_frame(refusal, task_id=message.task_id))
        except _Dead:
            self._drop_dead()
        except _STREAM_GONE:
            self.abort()

    def _stop_since_wait(self) -> None:
        if self._since_wait is not None:
            self._since_wait.cancel()
            self._since_wait = None

    def _open_subscription(self, message: Subscribe) -> Subscription:
        since = message.since
        newest = self.publisher.last_seq
        if since is not None and since > newest:
            raise MessageError(beyond_newest(since, newest))
        buffer_size = self.config.subscription_buffer
        if message.task_id == SESSION_TOPIC:
            return self.session_source.subscribe_session(since=since, buffer_size=buffer_size)
        if self.executor is not None and not self.executor.has_task(message.task_id):
            raise MessageError(f"task_id: unknown task {message.task_id!r}")
        return self.publisher.subscribe(message.task_id, since=since, buffer_size=buffer_size)

    async def _command(self, command: Command) -> None:
        try:
            status = perform_command(
                command, role=self.role, executor=self.executor, peer=self.peer
            )
        except MessageError as exc:
            reply = error_frame(str(exc), action=command.action, task_id=command.task_id)
        else:
            reply = command_result_frame(command, status)
        await self._reply(reply)

    # -- writer ------------------------------------------------------------
    def _switch_to(self, subscription: Subscription | None) -> None:
        old, self._subscription = self._subscription, subscription
        if old is not None and old is not subscription:
            old.close()

    def _deliver(self, item: Published) -> bool:
        """The hook the publisher calls with each event while nothing is queued.

        True: the frame went out whole, or in part (the writer sends the rest
        before anything else).  False: declined, so the publisher queues it and
        the writer is started to send it.
        """
        if self.wire.closed:
            return False  # nothing may follow the close frame
        stream = self.stream
        if not stream.can_write_now:
            self._start_writer()
            return False
        if self._answering:
            self.counts.declined += 1
            self._start_writer()
            return False
        offer = offer_frame(stream, self.frames, self.counts, item)
        if offer is Offer.WHOLE:
            return True
        if offer is Offer.PART and self._subscription is not None:
            self._subscription.set_direct(None)
        self._start_writer()
        return offer is Offer.PART

    def _start_writer(self) -> None:
        if not self._writing and self._nursery is not None and not self._body_done:
            self._writing = True
            self._nursery.start_soon(self._write_loop)

    async def _write_loop(self) -> None:
        try:
            while await self._write_next():
                pass
        except _STREAM_GONE:
            self.abort()  # the client is gone: the reader may be waiting on a half-open socket
        finally:
            self._writing = False

    async def _write_next(self) -> bool:
        """Send the next owed or queued frame; False once caught up (the hook lent again)."""
        if self.stream.owed:
            await self.stream.flush()  # the rest of a partial direct write
            return True
        subscription = self._subscription
        if subscription is None or self.wire.closed:
            return False
        try:
            item = subscription.receive_nowait()
        except trio.WouldBlock:
            if not self._closing:
                subscription.set_direct(self._deliver)
            return False
        except trio.EndOfChannel:
            # Closed by go_away, or the publisher closed: nothing more comes.
            self._subscription = None
            return False
        self.counts.queued += 1
        await self.wire.send_text(item.wire)
        return True
