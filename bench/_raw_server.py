"""The machine's limit: pre-framed bytes written with ``socket.send`` in a loop.

No library and no per-subscriber state beyond the socket: the two frames of a
round are framed once, then sent to each subscriber in turn.  A send that does
not fit the socket buffer keeps its remainder until the socket is writable.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time

import attrs

from ._control import say, stats
from ._fanout_frames import BACKLOG, ReferenceFrames
from ._wsframes import OP_TEXT, FrameReader, frame, server_handshake_response


@attrs.define(eq=False)
class _Peer:
    sock: socket.socket
    head: bytearray = attrs.field(factory=bytearray)
    upgraded: bool = False
    subscribed: bool = False
    reader: FrameReader = attrs.field(factory=FrameReader)
    unsent: bytes = b""


@attrs.define(eq=False)
class _RawServer:
    frames: ReferenceFrames
    listener: socket.socket
    selector: selectors.BaseSelector = attrs.field(factory=selectors.DefaultSelector)
    subscribers: list[_Peer] = attrs.field(factory=list)
    welcome: bytes = b""
    round_bytes: tuple[bytes, ...] = ()
    fired: int = 0

    def __attrs_post_init__(self) -> None:
        self.welcome = frame(self.frames.subscribed.encode()) + frame(self.frames.snapshot.encode())
        self.round_bytes = tuple(
            frame(event.encode()) + frame(update.encode()) for event, update in self.frames.rounds
        )

    def run(self) -> None:
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(sys.stdin, selectors.EVENT_READ, "control")
        while True:
            for key, events in self.selector.select():
                if key.data == "accept":
                    self._accept()
                elif key.data == "control":
                    if not self._control():
                        return
                elif events & selectors.EVENT_WRITE:
                    self._flush(key.data)
                else:
                    self._read(key.data)

    def _accept(self) -> None:
        try:
            sock, _address = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.selector.register(sock, selectors.EVENT_READ, _Peer(sock))

    def _read(self, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionError:
            data = b""
        if not data:
            self._drop(peer)
            return
        if not peer.upgraded:
            peer.head += data
            end = peer.head.find(b"\r\n\r\n")
            if end < 0:
                return
            data = bytes(peer.head[end + 4 :])
            peer.sock.sendall(server_handshake_response(bytes(peer.head[:end])))
            peer.upgraded = True
        for opcode, _payload in peer.reader.feed(data):
            if opcode == OP_TEXT and not peer.subscribed:
                peer.subscribed = True
                peer.sock.sendall(self.welcome)
                self.subscribers.append(peer)

    def _drop(self, peer: _Peer) -> None:
        self.selector.unregister(peer.sock)
        peer.sock.close()
        if peer.subscribed:
            self.subscribers.remove(peer)

    def _control(self) -> bool:
        line = sys.stdin.readline()
        command = json.loads(line)["cmd"] if line else "quit"
        if command == "fire":
            started = time.monotonic()
            self._broadcast(self.round_bytes[self.fired % len(self.round_bytes)])
            self.fired += 1
            say({"fired": started})
        elif command == "stats":
            say(stats(len(self.subscribers)))
        else:
            return False
        return True

    def _broadcast(self, data: bytes) -> None:
        for peer in self.subscribers:
            if peer.unsent:
                peer.unsent += data
                continue
            try:
                sent = peer.sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                peer.unsent = data[sent:]
                self.selector.modify(peer.sock, selectors.EVENT_WRITE, peer)

    def _flush(self, peer: _Peer) -> None:
        sent = peer.sock.send(peer.unsent)
        peer.unsent = peer.unsent[sent:]
        if not peer.unsent:
            self.selector.modify(peer.sock, selectors.EVENT_READ, peer)


def serve_raw(frames: ReferenceFrames) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    say({"port": listener.getsockname()[1]})
    _RawServer(frames, listener).run()
