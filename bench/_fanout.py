"""Fan-out: one state change to N WebSocket subscribers, runcast vs websockets vs raw sockets.

For each N, each server runs in its own process and N clients connect over
loopback from separate load-generator processes (``_loadgen``), subscribe to
``"*"`` and wait.  A round: the clients are told how many session updates to
expect, the server fires one state change (runcast: ``executor.pause()`` /
``resume()``; the baselines: the same two frames, framed by them), and each
load generator reports when its last client had the update.  Per round:

* server cost per subscriber = the server process's CPU seconds over the
  round (``time.process_time`` before the fire and after the last receipt) / N;
* latency = last receipt - the moment just before the state change
  (``time.monotonic`` is one clock for every process on the host).

The idle-subscriber memory comes from the same runs: the server's RSS before
the clients connect and once they are all subscribed.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from ._children import Child, open_child
from ._fanout_server import KINDS
from ._report import emit, median, percentile, table, write_result

WS_PATH = "/ws"


@attrs.frozen
class FanoutConfig:
    sizes: tuple[int, ...] = (100, 1_000, 5_000)
    rounds: int = 12
    warmup: int = 2
    kinds: tuple[str, ...] = KINDS
    clients_per_process: int = 1_250
    gap_seconds: float = 0.15
    connect_timeout: float = 180.0
    round_timeout: float = 60.0
    #: Extra rounds run under cProfile in the runcast server, at this N (not timed).
    profile_size: int | None = 1_000
    profile_rounds: int = 5


@attrs.frozen
class Round:
    latency: float
    first_latency: float
    server_cpu: float
    client_cpu_max: float


@attrs.frozen
class Run:
    kind: str
    subscribers: int
    connect_seconds: float
    rss_before: int
    rss_idle: int
    rounds: tuple[Round, ...]
    loadgen_processes: int
    profile: dict[str, Any] | None = None
    #: runcast only: how its frames went out over the measured rounds (direct,
    #: partial, declined, queued: see ``api.RuncastServer.delivery``).
    delivery: dict[str, int] | None = None


@asynccontextmanager
async def _loadgens(port: int, count: int, config: FanoutConfig) -> AsyncIterator[list[Child]]:
    processes = max(1, math.ceil(count / config.clients_per_process))
    shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
    async with AsyncExitStack() as stack:
        children = [
            await stack.enter_async_context(
                open_child(
                    f"loadgen {i}",
                    ["bench._loadgen", "127.0.0.1", str(port), WS_PATH, str(share)],
                    reply_within=config.round_timeout,
                )
            )
            for i, share in enumerate(shares)
        ]
        yield children
        for child in children:
            await child.send({"quit": True})


async def _round(server: Child, loadgens: list[Child], expect: int) -> Round:
    before = await server.ask({"cmd": "stats"})
    for loadgen in loadgens:
        await loadgen.send({"expect": expect})
    fired = (await server.ask({"cmd": "fire"}))["fired"]
    replies = [await loadgen.receive() for loadgen in loadgens]
    after = await server.ask({"cmd": "stats"})
    return Round(
        latency=max(reply["last"] for reply in replies) - fired,
        first_latency=min(reply["first"] for reply in replies) - fired,
        server_cpu=after["cpu"] - before["cpu"],
        client_cpu_max=max(reply["cpu"] for reply in replies),
    )


async def measure(kind: str, subscribers: int, config: FanoutConfig) -> Run:
    async with open_child(f"{kind} server", ["bench._fanout_server", kind]) as server:
        port = (await server.receive())["port"]
        rss_before = (await server.ask({"cmd": "stats"}))["rss"]
        started = trio.current_time()
        async with _loadgens(port, subscribers, config) as loadgens:
            for loadgen in loadgens:
                await loadgen.receive(within=config.connect_timeout)
            connect_seconds = trio.current_time() - started
            idle = await server.ask({"cmd": "stats"})
            if idle["subscribers"] != subscribers:
                raise RuntimeError(f"{kind}: {idle['subscribers']} of {subscribers} subscribed")
            rounds: list[Round] = []
            delivery_before: dict[str, int] = {}
            for index in range(config.warmup + config.rounds):
                await trio.sleep(config.gap_seconds)
                if index == config.warmup:
                    delivery_before = (await server.ask({"cmd": "stats"})).get("delivery", {})
                measured = await _round(server, loadgens, expect=index + 2)
                if index >= config.warmup:
                    rounds.append(measured)
            delivery = _delivery_between(
                delivery_before, (await server.ask({"cmd": "stats"})).get("delivery")
            )
            profile = None
            if kind.startswith("runcast") and subscribers == config.profile_size:
                await server.ask({"cmd": "profile_start"})
                for index in range(config.profile_rounds):
                    await trio.sleep(config.gap_seconds)
                    await _round(server, loadgens, expect=config.warmup + config.rounds + index + 2)
                profile = await server.ask({"cmd": "profile_stop"})
        await server.send({"cmd": "quit"})
    return Run(
        kind=kind,
        subscribers=subscribers,
        connect_seconds=connect_seconds,
        rss_before=rss_before,
        rss_idle=idle["rss"],
        rounds=tuple(rounds),
        loadgen_processes=len(loadgens),
        profile=profile,
        delivery=delivery,
    )


def _delivery_between(
    before: dict[str, int], after: dict[str, int] | None
) -> dict[str, int] | None:
    if after is None:
        return None
    return {key: value - before.get(key, 0) for key, value in after.items()}


def _direct_share(delivery: dict[str, int] | None) -> str:
    if not delivery:
        return ""
    total = delivery["direct"] + delivery["partial"] + delivery["queued"]
    return f"{delivery['direct'] / total:.1%}" if total else ""


def summarize_run(run: Run) -> dict[str, Any]:
    latencies = [r.latency for r in run.rounds]
    per_subscriber = [r.server_cpu / run.subscribers for r in run.rounds]
    return {
        "kind": run.kind,
        "subscribers": run.subscribers,
        "loadgen_processes": run.loadgen_processes,
        "connect_seconds": run.connect_seconds,
        "server_cpu_per_subscriber_seconds_median": median(per_subscriber),
        "server_cpu_per_subscriber_seconds": per_subscriber,
        "latency_p50_seconds": percentile(latencies, 0.5),
        "latency_p99_seconds": percentile(latencies, 0.99),
        "latencies_seconds": latencies,
        "first_receipt_p50_seconds": median(r.first_latency for r in run.rounds),
        "loadgen_cpu_per_round_max_seconds_median": median(r.client_cpu_max for r in run.rounds),
        "rss_before_bytes": run.rss_before,
        "rss_idle_bytes": run.rss_idle,
        "rss_per_idle_subscriber_bytes": (run.rss_idle - run.rss_before) / run.subscribers,
        "profile": run.profile,
        "delivery": run.delivery,
    }


async def run(config: FanoutConfig) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for size in config.sizes:
        for kind in config.kinds:
            emit(f"  fan-out: {kind}, {size:,} subscribers ...")
            runs.append(summarize_run(await measure(kind, size, config)))
    return {"config": attrs.asdict(config), "runs": runs, **_ratios(runs)}


def _ratios(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_key = {(r["kind"], r["subscribers"]): r for r in runs}
    ratios: dict[str, Any] = {}
    for (kind, size), data in by_key.items():
        if not kind.startswith("runcast"):
            continue
        cost = data["server_cpu_per_subscriber_seconds_median"]
        for baseline in ("websockets", "raw"):
            other = by_key.get((baseline, size))
            if other is not None:
                base = other["server_cpu_per_subscriber_seconds_median"]
                key = f"{kind.replace('-', '_')}_cost_ratio_vs_{baseline}"
                ratios.setdefault(key, {})[str(size)] = cost / base
    return {
        **ratios,
        "target_cost_ratio_vs_websockets": 1.5,
        "target_latency_p99_seconds_at_1000": 0.1,
    }


def report(result: dict[str, Any]) -> None:
    config = result["config"]
    rows = []
    for data in result["runs"]:
        key = f"{data['kind'].replace('-', '_')}_cost_ratio_vs_websockets"
        value = result.get(key, {}).get(str(data["subscribers"]))
        ratio = "" if value is None else f"{value:.2f}x"
        rows.append(
            (
                f"{data['subscribers']:,}",
                data["kind"],
                data["server_cpu_per_subscriber_seconds_median"] * 1e6,
                ratio,
                data["latency_p50_seconds"] * 1000,
                data["latency_p99_seconds"] * 1000,
                data["loadgen_cpu_per_round_max_seconds_median"] * 1000,
                data["rss_per_idle_subscriber_bytes"] / 1024,
                _direct_share(data["delivery"]),
            )
        )
    emit(
        table(
            f"Fan-out: one state change (event + session_update) to N subscribers on "
            f"loopback, {config['rounds']} rounds (targets: cost <= 1.5x websockets, "
            "p99 < 100 ms at 1,000)",
            (
                "N",
                "server",
                "CPU us/subscriber",
                "vs websockets",
                "p50 ms",
                "p99 ms",
                "loadgen CPU ms/round",
                "idle KiB/subscriber",
                "frames direct",
            ),
            rows,
        )
    )
    for data in result["runs"]:
        if data["profile"] is not None:
            emit(
                table(
                    f"Where {data['kind']}'s fan-out time goes "
                    f"({data['subscribers']:,} subscribers, {config['profile_rounds']} rounds, "
                    "cProfile self time in the server)",
                    ("stage", "share"),
                    [(s, f"{v:.1%}") for s, v in data["profile"]["stage_share"].items()],
                )
            )


async def main(config: FanoutConfig, results_dir: Path) -> dict[str, Any]:
    result = await run(config)
    report(result)
    write_result("fanout", result, directory=results_dir)
    return result
