"""Start-up tuning of the garbage collector for long-running commands.

The event loop's longest steps were full (generation 2) collections, most of
their time spent traversing objects that live as long as the process: imports
and genai-prices' price data (~70,000 objects). ``gc.freeze()`` after start-up
moves those out of every later collection. genai-prices loads its data on
first use, a long step of its own; loading it here moves that step out of the
event loop, and lets the freeze cover it. Measured: bench/README.md §2.4.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import structlog
from genai_prices.data_snapshot import get_snapshot

log = structlog.get_logger("runcast.api")

#: gc thresholds while serving (CPython's default: 700, 10, 10). A larger
#: generation-0 threshold means fewer young collections, each a little longer.
GC_THRESHOLDS: Final = (700, 10, 10)


def settle_heap(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> tuple[int, int, int]:
    """Load what lives for the whole process, then freeze it; returns the old thresholds."""
    try:
        get_snapshot()
    except Exception as exc:  # unpriced usage will say so; start-up must not fail here
        log.warning("could not preload genai-prices data", error=str(exc))
    gc.collect()
    gc.freeze()
    previous = gc.get_threshold()
    gc.set_threshold(*thresholds)
    return previous


@contextmanager
def settled_heap(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> Iterator[None]:
    """``settle_heap`` for a block, undone after it (benchmarks compare with and without)."""
    previous = settle_heap(thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
