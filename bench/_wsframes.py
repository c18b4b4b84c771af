"""Just enough RFC 6455 for the load generator and the raw baseline: framing and handshake."""

from __future__ import annotations

import base64
import hashlib
import os
import struct

import attrs

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class FrameError(Exception):
    """The peer sent something this minimal implementation does not accept."""


def accept_key(client_key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(client_key + GUID).digest())


def frame(payload: bytes, opcode: int = OP_TEXT, *, mask: bool = False) -> bytes:
    """One final frame; clients must mask, servers must not."""
    length = len(payload)
    head = bytearray([0x80 | opcode])
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head.append(mask_bit | length)
    elif length < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", length)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + key + masked


def client_handshake(host: str, port: int, path: str) -> tuple[bytes, bytes]:
    """The upgrade request and the ``Sec-WebSocket-Accept`` value to expect."""
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    return request, accept_key(key)


def server_handshake_response(request_head: bytes) -> bytes:
    key = b""
    for line in request_head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    if not key:
        raise FrameError("upgrade request without Sec-WebSocket-Key")
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n"
    )


@attrs.define
class FrameReader:
    """Incremental parser; ``feed`` returns complete (opcode, payload) messages."""

    _buffer: bytearray = attrs.field(factory=bytearray)
    _fragments: bytearray = attrs.field(factory=bytearray)
    _fragment_opcode: int = OP_TEXT

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        messages: list[tuple[int, bytes]] = []
        while True:
            parsed = self._next_frame()
            if parsed is None:
                return messages
            fin, opcode, payload = parsed
            # Control frames (>= OP_CLOSE) are never fragmented.
            if opcode >= OP_CLOSE or (opcode != OP_CONTINUATION and fin):
                messages.append((opcode, payload))
            else:
                if opcode != OP_CONTINUATION:
                    self._fragment_opcode = opcode
                self._fragments += payload
                if fin:
                    messages.append((self._fragment_opcode, bytes(self._fragments)))
                    self._fragments.clear()

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        fin = bool(buffer[0] & 0x80)
        opcode = buffer[0] & 0x0F
        masked = bool(buffer[1] & 0x80)
        length = buffer[1] & 0x7F
        offset = 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length = struct.unpack_from("!H", buffer, 2)[0]
            offset = 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length = struct.unpack_from("!Q", buffer, 2)[0]
            offset = 10
        key = b""
        if masked:
            if len(buffer) < offset + 4:
                return None
            key = bytes(buffer[offset : offset + 4])
            offset += 4
        if len(buffer) < offset + length:
            return None
        payload = bytes(buffer[offset : offset + length])
        del buffer[: offset + length]
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload
