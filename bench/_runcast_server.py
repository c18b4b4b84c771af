"""The fan-out benchmark's runcast server: the real server, broadcaster and executor.

A ``fire`` pauses (or resumes) the executor, exactly as an operator's command
does; the broadcaster then publishes the ``session_update``, and both frames
reach every subscriber: written directly by the publisher's call while the
subscriber is idle, else by its writer task.  ``stats`` also reports how the
frames went out (``RuncastServer.delivery``).
"""

from __future__ import annotations

import cProfile
import json
import os
import time
from collections.abc import AsyncIterator
from functools import partial

import attrs
import trio
from prometheus_client import CollectorRegistry

from api import ServerConfig, serve_runcast
from broadcaster import RuncastMetrics, serve_broadcaster
from events import Publisher
from executor import open_executor

from ._control import say, stats
from ._profile import summarize


async def _commands(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    """Control commands, one JSON line each, until EOF."""
    buffer = b""
    while True:
        data = await stream.receive_some(4096)
        if not data:
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            command: str = json.loads(line)["cmd"]
            yield command


async def _serve() -> None:
    publisher = Publisher()
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with trio.open_nursery() as nursery:
        broadcaster = await nursery.start(partial(serve_broadcaster, publisher, metrics=metrics))
        async with open_executor(publisher) as executor:
            server = await nursery.start(
                partial(
                    serve_runcast,
                    publisher,
                    session_source=broadcaster,
                    executor=executor,
                    metrics=metrics,
                    config=ServerConfig(host="127.0.0.1", port=0),
                )
            )
            say({"port": server.port, "pid": os.getpid()})
            profiler = cProfile.Profile(time.process_time)
            async for command in _commands(stdin):
                if command == "fire":
                    fired = time.monotonic()
                    if executor.is_paused:
                        executor.resume(reason="bench")
                    else:
                        executor.pause(reason="bench")
                    say({"fired": fired})
                elif command == "stats":
                    delivery = attrs.asdict(server.delivery)
                    say({**stats(server.websocket_count), "delivery": delivery})
                elif command == "profile_start":
                    profiler.enable()
                    say({"profiling": True})
                elif command == "profile_stop":
                    profiler.disable()
                    say(summarize(profiler).as_dict())
                else:
                    break
        nursery.cancel_scope.cancel()


def serve_runcast_bench() -> None:
    trio.run(_serve)
