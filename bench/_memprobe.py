"""Where a long demo run's memory goes: the demo in this process, looked at from inside.

``python -m bench._memprobe --speed 4 --marks 120,300,600`` runs what
``runcast demo --concurrency 64 --interval 1 --speed 4`` runs (the same stack
and simulation, the same gc settling as the console script; ``_memory``'s
compressed demo) with 5 dashboards attached from a load-generator process,
and at each mark records: RSS; tracemalloc's total and its growth since the
previous mark by traceback; gc-tracked objects by type; pymalloc's arenas and
glibc's heap (``mallinfo2``); and how full each bounded structure is
(publisher history, executor registry, both aggregates' ended ids, the
executor's reserved ids). The RSS figures of the benchmark itself come from
``_memory`` (the real process, no tracemalloc); this says what grows.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import random
import re
import socket
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from api._stack import Stack, open_stack
from api.cli._demo import DemoOptions, simulate
from api.cli._heap import settle_heap
from api.server._config import ServerConfig

from ._children import open_child
from ._report import rss_bytes

FRAMES = 12
TOP = 15


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def glibc_heap() -> dict[str, int]:
    """glibc's own view: bytes in use by malloc (``uordblks``), free in its heap, mmapped."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {
        "heap_bytes": info.arena,
        "in_use_bytes": info.uordblks,
        "free_bytes": info.fordblks,
        "mmapped_bytes": info.hblkhd,
    }


_ARENA_LINE = re.compile(
    rb"^# arenas (allocated total|reclaimed|highwater mark|allocated current)\s*=\s*([\d,]+)",
    re.M,
)
_BYTES_LINE = re.compile(rb"^# bytes in (allocated blocks|available blocks)\s*=\s*([\d,]+)", re.M)


def pymalloc_stats() -> dict[str, int]:
    """Arena counts and block bytes from ``sys._debugmallocstats`` (it writes to fd 2)."""
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read()
    stats = {}
    for pattern in (_ARENA_LINE, _BYTES_LINE):
        for key, value in pattern.findall(text):
            stats[key.decode().replace(" ", "_")] = int(value.replace(b",", b""))
    return stats


def bounded_structures(stack: Stack) -> dict[str, int]:
    registry = stack.executor._registry
    broadcaster_agg = stack.broadcaster.aggregate
    metrics_agg = stack.metrics.aggregate
    return {
        "history_events": len(stack.publisher._history),
        "executor_live": len(registry.live),
        "executor_finished_kept": registry.finished_kept,
        "executor_finished_evicted": registry.finished_evicted,
        "executor_ids": len(registry.ids),
        "broadcaster_ended_kept": len(broadcaster_agg._ended),
        "broadcaster_ended_forgotten": broadcaster_agg.ended_forgotten,
        "metrics_ended_kept": len(metrics_agg._ended),
        "published_total": stack.publisher.published_total,
        "subscribers": stack.publisher.subscriber_count(),
    }


def object_counts() -> Counter[str]:
    return Counter(type(obj).__qualname__ for obj in gc.get_objects())


#: This checkout's root, wherever it was cloned: frames under it are shown relative.
_REPO_PREFIX = f"{Path(__file__).resolve().parent.parent}/"


def _short(name: str) -> str:
    if name.startswith(_REPO_PREFIX):
        return name.removeprefix(_REPO_PREFIX)
    for marker in ("/site-packages/", "/lib/python3.11/"):
        if marker in name:
            return name.split(marker, 1)[1]
    return name


def top_growth(
    after: tracemalloc.Snapshot, before: tracemalloc.Snapshot, key: str
) -> list[dict[str, Any]]:
    rows = []
    for stat in after.compare_to(before, key)[:TOP]:
        frames = [f"{_short(f.filename)}:{f.lineno}" for f in stat.traceback]
        rows.append({"size_diff": stat.size_diff, "count_diff": stat.count_diff, "where": frames})
    return rows


class Probe:
    def __init__(self, stack: Stack, started: float) -> None:
        self.stack = stack
        self.started = started
        self.snapshots: list[tracemalloc.Snapshot] = []
        self.counts: list[Counter[str]] = []
        self.marks: list[dict[str, Any]] = []

    def mark(self, label: str) -> dict[str, Any]:
        gc.collect()
        tracing = tracemalloc.is_tracing()
        snapshot = tracemalloc.take_snapshot() if tracing else None
        counts = object_counts()
        current, peak = tracemalloc.get_traced_memory()
        mark: dict[str, Any] = {
            "label": label,
            "seconds": time.monotonic() - self.started,
            "rss_bytes": rss_bytes(os.getpid()),
            "traced_bytes": current,
            "traced_peak_bytes": peak,
            "tracemalloc_overhead_bytes": tracemalloc.get_tracemalloc_memory(),
            "glibc": glibc_heap(),
            "pymalloc": pymalloc_stats(),
            "bounded": bounded_structures(self.stack),
            "gc_objects": sum(counts.values()),
        }
        if snapshot is not None and self.snapshots:
            previous, first = self.snapshots[-1], self.snapshots[0]
            mark["growth_since_previous_by_traceback"] = top_growth(snapshot, previous, "traceback")
            mark["growth_since_first_by_traceback"] = top_growth(snapshot, first, "traceback")
        if self.counts:
            mark["objects_since_previous"] = dict((counts - self.counts[-1]).most_common(TOP))
            mark["objects_since_first"] = dict((counts - self.counts[0]).most_common(TOP))
        if snapshot is not None:
            self.snapshots = [*self.snapshots[:1], snapshot]
        self.counts = [*self.counts[:1], counts]
        self.marks.append(mark)
        return mark


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    port = _free_port()
    options = DemoOptions(
        server=ServerConfig(port=port),
        interval=args.interval,
        concurrency=args.concurrency,
        budget_usd=args.budget_usd,
        seed=1,
        speed=args.speed,
    )
    settings = options.stack_settings()
    marks = [float(m) for m in args.marks.split(",")]
    async with open_stack(settings) as stack, trio.open_nursery() as nursery:
        nursery.start_soon(simulate, stack.executor, stack.publisher, options, random.Random(1))
        loadgen = ["bench._loadgen", "127.0.0.1", str(port), "/ws", str(args.dashboards)]
        async with open_child("dashboards", loadgen) as dashboards:
            await dashboards.receive()
            started = time.monotonic()
            probe = Probe(stack, started)
            _print(probe.mark("start"))
            for at in marks:
                await trio.sleep(max(0.0, started + at - time.monotonic()))
                _print(probe.mark(f"{at:g}s"))
            await dashboards.send({"quit": True})
        nursery.cancel_scope.cancel()
        stack.executor.cancel_all(reason="probe over")
    return probe.marks


def _print(mark: dict[str, Any]) -> None:
    brief = {k: v for k, v in mark.items() if not k.startswith(("growth", "objects"))}
    print(json.dumps(brief), flush=True)
    for key in ("growth_since_previous_by_traceback", "objects_since_previous"):
        if key in mark:
            print(key, json.dumps(mark[key], indent=1), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._memprobe")
    parser.add_argument("--marks", default="120,300,600", help="seconds, comma-separated")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--budget-usd", type=float, default=1_000.0)
    parser.add_argument("--speed", type=float, default=4.0)
    parser.add_argument("--dashboards", type=int, default=5)
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("memprobe.json"))
    args = parser.parse_args()
    settle_heap()
    if not args.no_tracemalloc:
        tracemalloc.start(FRAMES)
    marks = trio.run(run, args)
    args.out.write_text(json.dumps(marks, indent=1))


if __name__ == "__main__":
    main()
