"""Redis clients: redis-py's sync client in trio worker threads vs valkey-glide (issue 21).

Cluster mode appends a session's events to a Redis stream and reads them back;
the issue asks to measure both candidate clients on that path before choosing.
One ``redis-server`` (started here: free loopback port, temporary directory, no
persistence) serves every client in turn, in the same run:

- **redis-py thread**: redis-py's sync client, each call in a trio worker thread
  (``trio.to_thread.run_sync``), as the SQLite store offloads its writes.
- **glide**: valkey-glide's async client, which runs under trio through anyio
  (skipped, saying so, when valkey-glide is not installed).
- **redis-py inline** (a reference, not a candidate): the same sync client called
  on the trio thread, blocking the loop; the difference to "thread" is the thread
  hop. Only where blocking the loop does not change the measure itself.

Measures (``_redis_measures``): (a) ``append``: XADD of one ~340-byte event at a
time; (b) ``batch``: XADD pipelined 100 a round trip; (c) ``stream``: a writer at
1,000 events/s and a reader on XREAD BLOCK, end-to-end latency; (d) ``script``:
EVALSHA of a small append script one at a time; (e) ``concurrent``: 8 trio tasks
appending through one client; (f) ``script-batch``: the script pipelined 100 a
round trip (what cluster mode's forwarder sends); (g) ``catch-up``: XREAD of a
50,000-event backlog, 1,000 a call (a serve node starting or behind). Each round
runs every client once per measure, in an order that rotates between rounds; the
ratios are glide's against redis-py thread's of the same round (events/s: median
of the per-round ratios; latency: the pooled percentiles' ratio).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from ._redis_adapters import ClientOpener, open_redis_py_inline, open_redis_py_threads
from ._redis_adapters import redis_py_version as _redis_py_version
from ._redis_measures import EVENT, MEASURES, Sample, Sizes
from ._redis_server import RedisServer, running_redis_server
from ._report import emit, median, percentile, table, write_result

REDIS_PY = "redis-py thread"
REDIS_PY_INLINE = "redis-py inline"
GLIDE = "glide"
#: Where the inline reference runs: a blocked loop does not change what these time.
INLINE_MEASURES = frozenset({"append", "batch", "script", "script-batch", "catch-up"})

FULL_SIZES = Sizes(
    warmup=200,
    appends=5_000,
    batches=300,
    batch_size=100,
    stream_rate=1_000.0,
    stream_seconds=5.0,
    scripts=5_000,
    appenders=8,
    appends_each=1_000,
    backlog=50_000,
)


@attrs.frozen
class RedisClientsConfig:
    rounds: int = 5
    sizes: Sizes = FULL_SIZES
    measures: tuple[str, ...] = tuple(MEASURES)


def load_glide() -> tuple[ClientOpener | None, str]:
    """glide's opener and version, or ``None`` and why the glide half is skipped."""
    try:
        from . import _redis_glide
    except ImportError as exc:
        return None, (
            f"valkey-glide is not installed ({exc}); "
            "`.venv/bin/pip install valkey-glide` (or the bench extra) measures the glide half"
        )
    return _redis_glide.open_glide, _redis_glide.glide_version()


def _clients_of(measure: str, clients: dict[str, ClientOpener]) -> list[str]:
    return [name for name in clients if name != REDIS_PY_INLINE or measure in INLINE_MEASURES]


async def run_rounds(
    config: RedisClientsConfig, server: RedisServer, clients: dict[str, ClientOpener]
) -> dict[str, dict[str, list[Sample]]]:
    samples: dict[str, dict[str, list[Sample]]] = {
        m: {name: [] for name in _clients_of(m, clients)} for m in config.measures
    }
    for round_index in range(config.rounds):
        for measure, by_client in samples.items():
            names = list(by_client)
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                sample = await MEASURES[measure](clients[name], server, config.sizes)
                by_client[name].append(sample)
    return samples


def summarise(samples: list[Sample]) -> dict[str, Any]:
    pooled = [latency for sample in samples for latency in sample.latencies]
    return {
        "events_per_second_median": median(s.events_per_second for s in samples),
        "cpu_us_per_event_median": median(s.cpu_us_per_event for s in samples),
        "p50_seconds": percentile(pooled, 0.50) if pooled else None,
        "p99_seconds": percentile(pooled, 0.99) if pooled else None,
        "rounds": [
            {
                "events": s.events,
                "seconds": s.seconds,
                "cpu_seconds": s.cpu_seconds,
                "events_per_second": s.events_per_second,
            }
            for s in samples
        ],
    }


def ratios(
    samples: dict[str, list[Sample]], summaries: dict[str, dict[str, Any]], name: str
) -> dict[str, float | None]:
    """``name``'s figures over redis-py thread's: events/s per round, latency pooled."""
    ours, base = summaries[name], summaries[REDIS_PY]
    per_round = [
        mine.events_per_second / theirs.events_per_second
        for mine, theirs in zip(samples[name], samples[REDIS_PY], strict=True)
    ]

    def latency(key: str) -> float | None:
        return None if base[key] is None else ours[key] / base[key]

    return {
        "events_per_second_ratio": median(per_round),
        "p50_ratio": latency("p50_seconds"),
        "p99_ratio": latency("p99_seconds"),
    }


def build_result(
    config: RedisClientsConfig,
    server: RedisServer,
    versions: dict[str, str],
    glide_skipped: str | None,
    samples: dict[str, dict[str, list[Sample]]],
) -> dict[str, Any]:
    measures = {
        measure: {name: summarise(rounds) for name, rounds in by_client.items()}
        for measure, by_client in samples.items()
    }
    compared = {
        name: {m: ratios(samples[m], measures[m], name) for m in measures if name in measures[m]}
        for name in (GLIDE, REDIS_PY_INLINE)
        if any(name in by_client for by_client in measures.values())
    }
    return {
        "redis_server": server.version,
        "clients": versions,
        "glide_skipped": glide_skipped,
        "event_bytes": len(EVENT),
        "rounds": config.rounds,
        "sizes": attrs.asdict(config.sizes),
        "measures": measures,
        "vs_redis_py_thread": compared,
    }


#: Latencies are per call: per event, but per 100 events for the batches and per
#: 1,000 for "catch-up".
HEADERS = (
    "measure",
    "client",
    "events/s",
    "p50 ms",
    "p99 ms",
    "CPU us/event",
    "events/s vs thread",
    "p99 vs thread",
)


def _ms(seconds: float | None) -> float | str:
    return "-" if seconds is None else seconds * 1000


def _ratio(value: float | None) -> float | str:
    return "-" if value is None else value


def report(result: dict[str, Any]) -> None:
    rows: list[list[object]] = []
    for measure, by_client in result["measures"].items():
        for name, summary in by_client.items():
            versus = result["vs_redis_py_thread"].get(name, {}).get(measure, {})
            rows.append(
                [
                    measure,
                    name,
                    summary["events_per_second_median"],
                    _ms(summary["p50_seconds"]),
                    _ms(summary["p99_seconds"]),
                    summary["cpu_us_per_event_median"],
                    _ratio(versus.get("events_per_second_ratio")),
                    _ratio(versus.get("p99_ratio")),
                ]
            )
    clients = ", ".join(result["clients"].values())
    emit(
        table(
            f"Redis clients under trio ({clients}; redis-server {result['redis_server']}; "
            f"{result['event_bytes']}-byte events; {result['rounds']} rounds)",
            HEADERS,
            rows,
        )
    )
    if result["glide_skipped"]:
        emit(f"glide: skipped: {result['glide_skipped']}")


async def main(config: RedisClientsConfig, results_dir: Path) -> dict[str, Any]:
    clients: dict[str, ClientOpener] = {
        REDIS_PY: open_redis_py_threads,
        REDIS_PY_INLINE: open_redis_py_inline,
    }
    versions = {REDIS_PY: _redis_py_version()}
    glide, glide_note = load_glide()
    if glide is not None:
        clients[GLIDE] = glide
        versions[GLIDE] = glide_note
    async with running_redis_server() as server:
        samples = await run_rounds(config, server, clients)
    result = build_result(
        config, server, versions, None if glide is not None else glide_note, samples
    )
    report(result)
    write_result("redis_clients", result, directory=results_dir)
    return result
