"""The asyncio baseline: the ``websockets`` library's ``broadcast()`` to every subscriber."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from ._control import say, stats
from ._fanout_frames import BACKLOG, ReferenceFrames


async def _serve(frames: ReferenceFrames) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    subscribers: set[ServerConnection] = set()

    async def handler(connection: ServerConnection) -> None:
        await connection.recv()  # the subscribe message
        await connection.send(frames.subscribed)
        await connection.send(frames.snapshot)
        subscribers.add(connection)
        try:
            await connection.wait_closed()
        finally:
            subscribers.discard(connection)

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    fired = 0

    def on_control() -> None:
        nonlocal fired
        line = sys.stdin.readline()
        command = json.loads(line)["cmd"] if line else "quit"
        if command == "fire":
            started = time.monotonic()
            event, update = frames.rounds[fired % len(frames.rounds)]
            fired += 1
            broadcast(subscribers, event)
            broadcast(subscribers, update)
            say({"fired": started})
        elif command == "stats":
            say(stats(len(subscribers)))
        elif not done.done():
            done.set_result(None)

    options: dict[str, Any] = {"backlog": BACKLOG}
    async with serve(handler, "127.0.0.1", 0, compression=None, **options) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        loop.add_reader(sys.stdin.fileno(), on_control)
        say({"port": port})
        try:
            await done
        finally:
            loop.remove_reader(sys.stdin.fileno())


def serve_websockets(frames: ReferenceFrames) -> None:
    asyncio.run(_serve(frames))
