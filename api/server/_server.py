"""``serve_runcast``: one port for the WebSocket endpoint and the HTTP endpoints."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

import attrs
import structlog
import trio

from broadcaster import RuncastMetrics
from events import Publisher

from ._access import AccessPolicy, Role
from ._config import ServerConfig
from ._direct_writes import DeliveryCounts, FrameCache, ReplayStream
from ._exceptions import ConfigError, HttpError, ListenError
from ._http import HEAD_END, HttpConnection, RequestHead
from ._interfaces import ExecutorControls, SessionSource
from ._limits import HttpRefusals, RequestLimit, register_refusals
from ._output_buffer import OutputBuffer
from ._pages import answer_error
from ._routes import Endpoints
from ._websocket import WebSocketSession
from ._ws_wire import NO_CLOSE_FRAME, WebSocketWire, accept_response

log = structlog.get_logger("runcast.api")

WEBSOCKET_PATH = "/ws"
#: Answered whatever the load: a fixed reply, and what a probe asks to see the loop alive.
UNLIMITED_PATHS = frozenset({"/healthz"})
#: Closing after an outside cancellation cannot wait for the client's reply.
CANCELLED_CLOSE_SECONDS = 0.25


def _peer_of(stream: trio.abc.Stream) -> str:
    if isinstance(stream, trio.SocketStream):
        try:
            address = stream.socket.getpeername()
        except OSError:
            return "?"
        if isinstance(address, tuple):
            host, port, *_ = address
            return f"{host}:{port}"
        return str(address) or "local"  # a Unix socket (a socketpair has no name)
    return "memory"


@attrs.define(eq=False)
class _LiveSession:
    session: WebSocketSession
    finished: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class RuncastServer:
    """A running server, handed over by :func:`serve_runcast`'s ``task_status``.

    ``host``/``port`` are the bound address (useful with port 0).  Await
    :meth:`shutdown` to stop gracefully: no new connections, WebSocket clients
    closed with 1001, then :func:`serve_runcast` returns.
    """

    config: ServerConfig
    publisher: Publisher
    session_source: SessionSource
    executor: ExecutorControls | None = None
    metrics: RuncastMetrics | None = None
    host: str = ""
    port: int = 0
    _policy: AccessPolicy = attrs.field(init=False)
    _endpoints: Endpoints = attrs.field(init=False)
    #: Each event's frame, built once for every subscriber written to directly.
    frames: FrameCache = attrs.field(factory=FrameCache)
    #: How frames went out to subscribers: directly, in part, declined, by the writers.
    delivery: DeliveryCounts = attrs.field(factory=DeliveryCounts)
    #: Requests refused, by status (also ``runcast_http_requests_refused_total``).
    refusals: HttpRefusals = attrs.field(factory=HttpRefusals)
    #: Each task's newest output lines, for ``/api/tasks/ID/output``.
    output: OutputBuffer = attrs.field(factory=OutputBuffer)
    _limit: RequestLimit = attrs.field(init=False)
    _live: dict[WebSocketSession, _LiveSession] = attrs.field(factory=dict)
    _accepting: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _connections: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _shut_down: bool = False

    def __attrs_post_init__(self) -> None:
        self._policy = AccessPolicy(self.config, self.port or None)
        self._limit = RequestLimit(self.config.max_http_requests, self.refusals)
        self._endpoints = Endpoints(
            self.publisher,
            self.session_source,
            self.executor,
            self.metrics,
            self.config.static_dir,
            output=self.output,
            policy=self._policy,
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def websocket_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + WEBSOCKET_PATH.lstrip("/")

    @property
    def websocket_count(self) -> int:
        return len(self._live)

    @property
    def http_requests_in_flight(self) -> int:
        """Plain HTTP requests being answered now (``max_http_requests`` at most)."""
        return self._limit.in_flight

    def stop_accepting(self) -> None:
        """Close the listening sockets; connected clients are served on. Idempotent."""
        self._accepting.cancel()

    async def shutdown(self) -> None:
        """Stop accepting, close every WebSocket with 1001, end the server. Idempotent."""
        if self._shut_down:
            await trio.lowlevel.checkpoint()
            return
        self._shut_down = True
        self.stop_accepting()
        live = list(self._live.values())
        # Each client first receives what is already queued for it (the final
        # session_update, typically), then the 1001 close; slow readers are cut off.
        for entry in live:
            entry.session.go_away()
        with trio.move_on_after(self.config.close_timeout):
            for entry in live:
                await entry.finished.wait()
        for entry in live:
            entry.session.abort()
        with trio.move_on_after(self.config.close_timeout):
            for entry in live:
                await entry.finished.wait()
        self._connections.cancel()

    # -- accepting -------------------------------------------------------------
    async def _serve(self, listeners: list[trio.SocketListener]) -> None:
        with self._connections:
            async with trio.open_nursery() as nursery:
                with self._accepting:
                    await trio.serve_listeners(
                        self.handle_connection, listeners, handler_nursery=nursery
                    )

    async def handle_connection(self, stream: trio.abc.Stream) -> None:
        """Serve one accepted connection: one HTTP request, or one WebSocket session."""
        peer = _peer_of(stream)
        http = HttpConnection(stream, self.config.max_head_bytes)
        handed_over = False
        head: RequestHead | None = None
        try:
            head = await self._read_head(http)
            if head is None:
                return
            role = self._admit(head, peer)
            if head.path == WEBSOCKET_PATH and head.method == "GET":
                key = self._check_upgrade(head)
                handed_over = True
                head = None  # a session may last hours: keep none of the head's headers
                await self._serve_websocket(http, key, role, peer)
            else:
                await self._serve_http(http, head, peer)
        except HttpError as error:
            log.info("http error", peer=peer, status=error.status, error=error.message)
            await answer_error(http, error, peer, head)
        except Exception:
            log.exception("connection failed", peer=peer)
            if not handed_over:
                await answer_error(http, HttpError(500, "internal error"), peer)
        finally:
            if not handed_over:
                await http.close()

    async def _read_head(self, http: HttpConnection) -> RequestHead | None:
        with trio.move_on_after(self.config.head_timeout):
            return await http.read_head()
        raise HttpError(408, f"request head not received within {self.config.head_timeout:g}s")

    def _admit(self, head: RequestHead, peer: str) -> Role:
        try:
            return self._policy.check(head.path, head.headers, head.query.get("token"))
        except HttpError as refusal:
            self.refusals.count(refusal.status)
            log.warning(
                "request refused",
                peer=peer,
                path=head.path,
                status=refusal.status,
                reason=refusal.message,
            )
            raise

    # -- HTTP ------------------------------------------------------------------
    async def _serve_http(self, http: HttpConnection, head: RequestHead, peer: str) -> None:
        if head.path == WEBSOCKET_PATH:
            if head.method != "GET":
                raise HttpError(405, "only GET", headers=(("Allow", "GET"),))
            raise HttpError(
                426, "this endpoint speaks WebSocket only", headers=(("Upgrade", "websocket"),)
            )
        handler = self._endpoints.find(head.path)
        if handler is None:
            raise HttpError(404, f"no such path {head.path!r}")
        if head.method != "GET":
            raise HttpError(405, f"{head.method} is not allowed here", headers=(("Allow", "GET"),))
        unlimited = head.path in UNLIMITED_PATHS
        with contextlib.nullcontext() if unlimited else self._limit.slot(head.path, peer):
            reply = await handler(head)
            await http.respond(reply.status, reply.body, reply.content_type)

    # -- WebSocket -------------------------------------------------------------
    @staticmethod
    def _check_upgrade(head: RequestHead) -> str:
        """The request's ``Sec-WebSocket-Key``, once it is a WebSocket upgrade we speak."""
        if not head.wants_websocket:
            raise HttpError(
                426, "this endpoint speaks WebSocket only", headers=(("Upgrade", "websocket"),)
            )
        key = head.headers.get("sec-websocket-key")
        if not key:
            raise HttpError(400, "Sec-WebSocket-Key header missing")
        if head.headers.get("sec-websocket-version") != "13":
            raise HttpError(
                426,
                "unsupported WebSocket version (13 required)",
                headers=(("Sec-WebSocket-Version", "13"),),
            )
        return key

    async def _serve_websocket(self, http: HttpConnection, key: str, role: Role, peer: str) -> None:
        stream = http.upgrade()
        try:
            wire = WebSocketWire(stream, self.config.max_message_bytes)
            # Frames the client sent right behind its head are the session's to read.
            wire.receive_data(_after_head(stream.take_buffered()), eof_if_empty=False)
            if await self._accept(stream, key, peer):
                await self._run_session(wire, role, peer)
        finally:
            await stream.aclose()

    async def _accept(self, stream: ReplayStream, key: str, peer: str) -> bool:
        """Send the ``101``; False if the client left (or took nothing) meanwhile."""
        with trio.move_on_after(self.config.head_timeout):
            try:
                await stream.send_all(accept_response(key))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # The client closed or reset before our 101 went out: routine churn,
                # not a server fault, so no error and no traceback in the log.
                log.info("websocket client left during the handshake", peer=peer)
                return False
            return True
        log.info("websocket client took no handshake reply", peer=peer)
        return False

    async def _run_session(self, wire: WebSocketWire, role: Role, peer: str) -> None:
        session = WebSocketSession(
            wire=wire,
            role=role,
            publisher=self.publisher,
            session_source=self.session_source,
            executor=self.executor,
            config=self.config,
            peer=peer,
            frames=self.frames,
            counts=self.delivery,
        )
        entry = self._live[session] = _LiveSession(session)
        gauge = self.metrics.websocket_connections if self.metrics is not None else None
        if gauge is not None:
            gauge.inc()
        log.info("websocket connected", peer=peer, role=role.value)
        cancelled = False
        try:
            if self._shut_down:
                session.go_away()
            await session.run()
        except trio.Cancelled:
            cancelled = True
            raise
        finally:
            del self._live[session]
            if gauge is not None:
                gauge.dec()
            if not session.dropped_dead:
                limit = CANCELLED_CLOSE_SECONDS if cancelled else self.config.close_timeout
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(limit),
                    contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
                ):
                    await wire.close(session.close_code, session.close_reason)
            # The peer's close code (1006: none came), and ours.
            received = wire.peer_close_code or NO_CLOSE_FRAME
            log.info("websocket closed", peer=peer, code=session.close_code, peer_code=received)
            entry.finished.set()


def _after_head(received: bytes) -> bytes:
    """What follows the request head in ``received``."""
    end = HEAD_END.search(received)
    return received[end.end() :] if end is not None else b""


async def serve_runcast(
    publisher: Publisher,
    *,
    session_source: SessionSource,
    executor: ExecutorControls | None = None,
    metrics: RuncastMetrics | None = None,
    config: ServerConfig | None = None,
    task_status: trio.TaskStatus[RuncastServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/ws`` and the HTTP endpoints until cancelled or shut down.

    ``session_source`` is the :class:`broadcaster.SessionBroadcaster`; ``executor``
    (optional) receives operator commands and lists ``/api/tasks``; ``metrics``
    (optional) serves ``/metrics``, counts WebSocket connections and refused requests.
    ``task_status.started`` hands over the :class:`RuncastServer`, bound.
    """
    config = ServerConfig() if config is None else config
    refusals = HttpRefusals()
    output = OutputBuffer(
        lines_per_task=config.output_lines_per_task, max_chars=config.output_max_chars
    )
    with _refusals_served(metrics, refusals), _listening(publisher, output):
        listeners = await _listen(config)
        host, port = listeners[0].socket.getsockname()[:2]
        server = RuncastServer(
            config,
            publisher,
            session_source,
            executor=executor,
            metrics=metrics,
            host=host,
            port=port,
            refusals=refusals,
            output=output,
        )
        log.info("listening", url=server.url)
        task_status.started(server)
        await server._serve(listeners)


@contextlib.contextmanager
def _listening(publisher: Publisher, output: OutputBuffer) -> Iterator[None]:
    """Keep task output from now on, in ``output``, until the server ends."""
    remove = publisher.add_listener(output.record)
    try:
        yield
    finally:
        remove()


@contextlib.contextmanager
def _refusals_served(metrics: RuncastMetrics | None, refusals: HttpRefusals) -> Iterator[None]:
    if metrics is None:
        yield
        return
    try:
        unregister = register_refusals(metrics.registry, refusals)
    except ValueError as exc:
        raise ConfigError(
            f"the metrics registry already serves another server's refused requests: {exc}"
        ) from exc
    try:
        yield
    finally:
        unregister()


async def _listen(config: ServerConfig) -> list[trio.SocketListener]:
    try:
        return await trio.open_tcp_listeners(config.port, host=config.host)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {config.host}: {exc}") from exc
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else str(exc)
        raise ListenError(f"cannot listen on {config.host}:{config.port}: {reason}") from exc
