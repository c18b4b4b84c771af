"""Where the time goes: cProfile self-time grouped into pipeline stages."""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs

#: (stage, predicate on "filename:function"), first match wins.  Self time is
#: attributed to the code that spent it; cattrs' and attrs' generated functions
#: and the json module belong to the event stage that calls them.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("wsproto (framing, control frames)", ("trio_websocket", "wsproto")),
    (
        "direct socket writes (frame once, one write)",
        ("api/server/_direct_writes", ":_deliver", "posix.write"),
    ),
    (
        "api WebSocket session (reader, writer)",
        ("api/server/_websocket", "api/server/_ws_", "api/server/_server", "api/server/_http"),
    ),
    ("store recorder", ("api/_store_recorder.py",)),
    ("store (sqlite, thread)", ("api/_store.py", "sqlite3", "_thread.", "threading.py")),
    ("metrics listener", ("broadcaster/_metrics.py",)),
    (
        "usage parsing, stdout reading",
        ("executor/usage/", "executor/process/", "json/decoder", ":loads"),
    ),
    ("broadcaster", ("broadcaster/",)),
    (
        "events: build, encode, publish",
        ("events/", "<attrs generated", "cattrs", "<cattrs", "json/", "_json.", "datetime"),
    ),
    ("cost (genai-prices)", ("genai_prices", "decimal", "pydantic")),
    ("executor", ("executor/",)),
    ("trio scheduler and I/O", ("trio/", "_trio", "outcome", "sniffio", "selectors", "epoll")),
    ("benchmark driver", ("bench/",)),
)


def stage_of(location: str) -> str:
    for stage, needles in STAGES:
        if any(needle in location for needle in needles):
            return stage
    return "other (builtins, stdlib)"


@attrs.define
class StageProfile:
    """Self time per stage, and the functions that spent the most."""

    total_seconds: float
    stages: dict[str, float]
    top_functions: list[tuple[str, float]]

    def shares(self) -> dict[str, float]:
        total = sum(self.stages.values()) or 1.0
        return {stage: seconds / total for stage, seconds in self.stages.items()}

    def as_dict(self) -> dict[str, object]:
        return {
            "profiled_seconds": self.total_seconds,
            "stage_self_seconds": self.stages,
            "stage_share": self.shares(),
            "top_functions_self_seconds": self.top_functions,
        }


def _location(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    return f"{filename}:{line}:{function}"


def summarize(profiler: cProfile.Profile, *, top: int = 15) -> StageProfile:
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    stages: dict[str, float] = {}
    functions: list[tuple[str, float]] = []
    for key, (_calls, _primitive, self_time, _cumulative, _callers) in raw.items():
        location = _location(key)
        stage = stage_of(location)
        stages[stage] = stages.get(stage, 0.0) + self_time
        functions.append((location, self_time))
    functions.sort(key=lambda pair: pair[1], reverse=True)
    ordered = dict(sorted(stages.items(), key=lambda pair: pair[1], reverse=True))
    total: float = stats.total_tt  # type: ignore[attr-defined]
    return StageProfile(total, ordered, [(_short(f), s) for f, s in functions[:top]])


def _short(location: str) -> str:
    for marker in ("/site-packages/", "/work/main/", "/lib/python3"):
        if marker in location:
            return location.split(marker, 1)[1]
    return location


@contextmanager
def profiled(sink: Callable[[StageProfile], None]) -> Iterator[None]:
    """Profile the block; ``sink`` gets the stage summary."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
    sink(summarize(profiler))
