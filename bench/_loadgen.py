"""The fan-out load generator: one process holding many subscribed WebSocket clients.

Run by the fan-out benchmark as ``python -m bench._loadgen HOST PORT PATH COUNT``.
It is deliberately plain: non-blocking sockets and one ``selectors`` loop, no
asyncio and no WebSocket library, so its cost per received frame is a
``recv``, a header parse, a substring test and a short regex match on the first
64 bytes (the event name, counted).  Each client subscribes to
``"*"`` and counts the ``session_update`` frames it receives.

Control, one JSON object per line: stdout says ``{"ready": n, ...}`` once every
client has its snapshot; then each stdin line ``{"expect": k}`` is answered
when every client has received ``k`` session updates in all, with the time
(``time.monotonic``, shared by all processes on the host) at which the last
one arrived and this process's CPU seconds.  ``{"quit": true}`` or EOF ends it.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence

import attrs

from ._control import say
from ._report import raise_open_file_limit
from ._wsframes import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, FrameReader, client_handshake, frame

SUBSCRIBE = frame(b'{"type":"subscribe","task_id":"*"}', mask=True)
SESSION_UPDATE_MARK = b'"event":"session_update"'
EVENT_NAME = re.compile(rb'"event":"(\w+)"')
CONNECT_WAVE = 256
CONNECT_TIMEOUT = 60.0


@attrs.define(eq=False)
class Tally:
    """How many clients have reached the expected update count (kept as they arrive),
    and the event frames all of them received, by event name."""

    expect: int | None = None
    reached: int = 0
    events: Counter[str] = attrs.field(factory=Counter)


@attrs.define(eq=False)
class Client:
    tally: Tally
    sock: socket.socket
    accept: bytes
    request: bytes
    head: bytearray = attrs.field(factory=bytearray)
    upgraded: bool = False
    reader: FrameReader = attrs.field(factory=FrameReader)
    frames: int = 0
    updates: int = 0
    last_update_at: float = 0.0
    closed: bool = False

    def on_readable(self, now: float) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionError:
            self.closed = True
            return
        if not data:
            self.closed = True
            return
        if not self.upgraded:
            data = self._read_head(data)
        if data:
            self._on_frames(data, now)

    def _read_head(self, data: bytes) -> bytes:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return b""
        head, rest = bytes(self.head[:end]), bytes(self.head[end + 4 :])
        if not head.startswith(b"HTTP/1.1 101") or self.accept not in head:
            raise RuntimeError(f"handshake refused: {head[:200]!r}")
        self.upgraded = True
        self.sock.sendall(SUBSCRIBE)
        return rest

    def _on_frames(self, data: bytes, now: float) -> None:
        for opcode, payload in self.reader.feed(data):
            if opcode == OP_TEXT:
                self.frames += 1
                name = EVENT_NAME.search(payload, 0, 64)
                if name is not None:
                    self.tally.events[name.group(1).decode()] += 1
                if SESSION_UPDATE_MARK in payload:
                    self.updates += 1
                    self.last_update_at = now
                    if self.updates == self.tally.expect:
                        self.tally.reached += 1
            elif opcode == OP_PING:
                self.sock.sendall(frame(payload, OP_PONG, mask=True))
            elif opcode == OP_CLOSE:
                self.closed = True


def _connect(
    host: str, port: int, path: str, count: int, sel: selectors.BaseSelector, tally: Tally
) -> list[Client]:
    """Open ``count`` clients, at most ``CONNECT_WAVE`` handshakes in flight at once."""
    clients: list[Client] = []
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while len(clients) < count or any(c.updates < 1 for c in clients):
        pending = sum(1 for c in clients if c.updates < 1)
        while len(clients) < count and pending < CONNECT_WAVE:
            sock = socket.create_connection((host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request, accept = client_handshake(host, port, path)
            sock.sendall(request)
            sock.setblocking(False)
            client = Client(tally, sock, accept, request)
            sel.register(sock, selectors.EVENT_READ, client)
            clients.append(client)
            pending += 1
        _poll(sel, 0.05)
        if any(c.closed for c in clients):
            raise RuntimeError("the server closed a connection during set-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count - pending} of {count} clients subscribed in time")
    return clients


def _poll(sel: selectors.BaseSelector, timeout: float) -> bool:
    """Serve readable sockets; True if the control channel (stdin) is readable."""
    control = False
    for key, _events in sel.select(timeout):
        if key.data is None:
            control = True
            continue
        key.data.on_readable(time.monotonic())
    return control


def _read_control() -> dict[str, object] | None:
    line = sys.stdin.readline()
    if not line:
        return None
    command: dict[str, object] = json.loads(line)
    return command


def serve(host: str, port: int, path: str, count: int) -> None:
    raise_open_file_limit(count + 64)
    sel = selectors.DefaultSelector()
    started = time.monotonic()
    tally = Tally()
    clients = _connect(host, port, path, count, sel, tally)
    say({"ready": len(clients), "seconds": time.monotonic() - started, "pid": os.getpid()})
    sel.register(sys.stdin, selectors.EVENT_READ, None)
    round_cpu = time.process_time()
    while True:
        if _poll(sel, 1.0):
            command = _read_control()
            if command is None or command.get("quit"):
                break
            expect = int(str(command["expect"]))
            tally.expect = expect
            tally.reached = sum(c.updates >= expect for c in clients)
            round_cpu = time.process_time()
        if tally.expect is not None and tally.reached >= len(clients):
            say(
                {
                    "last": max(c.last_update_at for c in clients),
                    "first": min(c.last_update_at for c in clients),
                    "cpu": time.process_time() - round_cpu,
                    "extra": sum(c.updates - tally.expect for c in clients),
                    "events": dict(tally.events),
                }
            )
            tally.expect = None
        if any(c.closed for c in clients):
            say({"error": f"{sum(c.closed for c in clients)} connections closed by the server"})
            break
    for client in clients:
        client.sock.close()


def main(argv: Sequence[str]) -> int:
    host, port, path, count = argv
    serve(host, int(port), path, int(count))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
