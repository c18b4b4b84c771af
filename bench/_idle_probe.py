"""Where an idle WebSocket subscriber's server memory goes, looked at from inside.

``python -m bench._idle_probe KIND N`` serves ``/ws`` in this process, has a
load-generator process (``_loadgen``) connect N clients that subscribe to
``"*"`` and wait, then reports per connection: RSS, tracemalloc's traced
bytes by file and by line, trio tasks and cancel scopes (walked from the root
task), and gc-tracked objects by type.  KIND is

* ``runcast``: the real ``serve_runcast`` with broadcaster, metrics and
  executor (as ``_runcast_server`` runs it);
* ``trio-websocket``: the least a trio-websocket server needs per client
  (``wrap_server_stream`` in a per-connection nursery, ``accept``, then
  ``get_message`` forever): what the library itself costs;
* ``trio``: one trio task per client over a bare ``SocketStream`` (the
  handshake answered by hand, frames pre-built): trio's floor.

tracemalloc's own bookkeeping about doubles RSS: ``--rss-only`` leaves it off,
and gives the RSS figure the fan-out benchmark's ``idle KiB/subscriber``
measures (same clients, no tracemalloc); the traced bytes say what makes it up.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any

import trio

from ._children import open_child
from ._fanout_frames import BACKLOG, reference_frames
from ._fanout_server import quiet_logs
from ._report import raise_open_file_limit, rss_bytes
from ._wsframes import frame, server_handshake_response

KINDS = ("runcast", "trio-websocket", "trio")
TOP = 25

Serve = Callable[[trio.TaskStatus[int]], Awaitable[None]]


async def _serve_runcast(task_status: trio.TaskStatus[int]) -> None:
    from prometheus_client import CollectorRegistry

    from api import ServerConfig, serve_runcast
    from broadcaster import RuncastMetrics, serve_broadcaster
    from events import Publisher
    from executor import open_executor

    publisher = Publisher()
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
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
            task_status.started(server.port)
            await trio.sleep_forever()


async def _serve_trio_websocket(task_status: trio.TaskStatus[int]) -> None:
    from trio_websocket import ConnectionClosed, wrap_server_stream

    frames = reference_frames()

    async def handler(stream: trio.SocketStream) -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, stream)
            ws = await request.accept()
            try:
                await ws.get_message()
                await ws.send_message(frames.subscribed)
                await ws.send_message(frames.snapshot)
                while True:
                    await ws.get_message()
            except ConnectionClosed:
                nursery.cancel_scope.cancel()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=BACKLOG)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handler, listeners)


async def _serve_trio(task_status: trio.TaskStatus[int]) -> None:
    frames = reference_frames()
    welcome = frame(frames.subscribed.encode()) + frame(frames.snapshot.encode())

    async def handler(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(4096)
            if not data:
                return
            head += data
        await stream.send_all(server_handshake_response(head))
        await stream.receive_some(4096)  # the subscribe frame
        await stream.send_all(welcome)
        while await stream.receive_some(4096):
            pass

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=BACKLOG)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handler, listeners)


SERVERS: dict[str, Serve] = {
    "runcast": _serve_runcast,
    "trio-websocket": _serve_trio_websocket,
    "trio": _serve_trio,
}


def _tasks(task: trio.lowlevel.Task) -> Iterator[trio.lowlevel.Task]:
    yield task
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            yield from _tasks(child)


def _census() -> dict[str, Any]:
    """Live trio tasks, and gc-tracked objects by type name."""
    gc.collect()
    tasks = list(_tasks(trio.lowlevel.current_root_task()))  # type: ignore[arg-type]
    names = Counter(task.name.rsplit(".", 1)[-1] for task in tasks)
    types = Counter(type(obj).__name__ for obj in gc.get_objects())
    return {"tasks": len(tasks), "task_names": names, "types": types}


def _per(before: Counter[str], after: Counter[str], count: int, top: int) -> list[list[Any]]:
    grown = Counter({key: after[key] - before[key] for key in after})
    return [[key, round(value / count, 2)] for key, value in grown.most_common(top) if value > 0]


def _traced(before: tracemalloc.Snapshot | None, after: tracemalloc.Snapshot | None) -> int:
    if before is None or after is None:
        return 0
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def _stats_by(
    before: tracemalloc.Snapshot | None, after: tracemalloc.Snapshot | None, key: str, count: int
) -> list[list[Any]]:
    if before is None or after is None:
        return []
    rows = []
    for stat in after.compare_to(before, key)[:TOP]:
        where = stat.traceback[0]
        name = where.filename if key == "filename" else f"{where.filename}:{where.lineno}"
        rows.append([name, round(stat.size_diff / count), round(stat.count_diff / count, 2)])
    return rows


async def probe(kind: str, count: int, *, trace: bool = True) -> dict[str, Any]:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(SERVERS[kind])
        await trio.sleep(0.2)
        census_before = _census()
        rss_before = rss_bytes()
        if trace:
            tracemalloc.start(1)
        snapshot_before = tracemalloc.take_snapshot() if trace else None
        args = ["bench._loadgen", "127.0.0.1", str(port), "/ws", str(count)]
        async with open_child("loadgen", args, reply_within=300) as loadgen:
            ready = await loadgen.receive()
            await trio.sleep(0.5)
            rss_after = rss_bytes()
            snapshot_after = tracemalloc.take_snapshot() if trace else None
            tracemalloc.stop()
            census_after = _census()
            await loadgen.send({"quit": True})
        nursery.cancel_scope.cancel()
    return {
        "kind": kind,
        "connections": ready["ready"],
        "rss_per_connection_bytes": (rss_after - rss_before) / count,
        "traced_per_connection_bytes": _traced(snapshot_before, snapshot_after) / count,
        "tasks_per_connection": (census_after["tasks"] - census_before["tasks"]) / count,
        "task_names": _per(census_before["task_names"], census_after["task_names"], count, TOP),
        "types": _per(census_before["types"], census_after["types"], count, 40),
        "by_file": _stats_by(snapshot_before, snapshot_after, "filename", count),
        "by_line": _stats_by(snapshot_before, snapshot_after, "lineno", count),
        "traced": trace,
    }


def _print(result: dict[str, Any]) -> None:
    traced = f"traced {result['traced_per_connection_bytes'] / 1024:.1f} KiB, "
    print(
        f"{result['kind']}: {result['connections']} idle connections; per connection: "
        f"RSS {result['rss_per_connection_bytes'] / 1024:.1f} KiB"
        f"{' (tracemalloc on)' if result['traced'] else ''}, "
        f"{traced if result['traced'] else ''}{result['tasks_per_connection']:.2f} trio tasks"
    )
    print("tasks:", ", ".join(f"{name} {n}" for name, n in result["task_names"]))
    print("objects:", ", ".join(f"{name} {n}" for name, n in result["types"]))
    for title, key in (("by file", "by_file"), ("by line", "by_line")):
        print(f"-- traced {title} (bytes, blocks per connection)")
        for name, size, blocks in result[key]:
            print(f"{size:>8} {blocks:>6}  {name}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._idle_probe", description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("count", type=int)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--rss-only",
        action="store_true",
        help="no tracemalloc (it doubles RSS): RSS, tasks and objects only",
    )
    args = parser.parse_args(argv)
    raise_open_file_limit(args.count + 256)
    quiet_logs()
    result = trio.run(partial(probe, args.kind, args.count, trace=not args.rss_only))
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
