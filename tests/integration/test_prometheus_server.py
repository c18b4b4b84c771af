"""A real Prometheus server scrapes a real ``runcast demo``; promtool lints the live exposition.

Prometheus (Debian package ``prometheus``) asks for OpenMetrics first, so its
scrapes exercise runcast's OpenMetrics output with Prometheus' own parser, with
the operator token in the ``Authorization`` header as a real deployment would.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from _api_support import http_get
from _peer_support import (
    DemoProcess,
    PeerProcess,
    free_loopback_port,
    poll_until,
    running,
    serving_demo,
)

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        PROMETHEUS is None or PROMTOOL is None,
        reason="prometheus/promtool are not installed (Debian package 'prometheus'; "
        "./scripts/ensure-system-deps installs it)",
    ),
]

TOKEN = "scrape-secret"
CONCURRENCY = 3
TIMEOUT = 90
KINDS = {"input", "output", "cache_read", "cache_write"}
#: The demo's providers; its local model names none.
PROVIDERS = {"anthropic", "openai", "google", "unknown"}
#: What Prometheus 2.x sends when it scrapes (OpenMetrics preferred).
SCRAPE_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
#: Prometheus may move a scrape's timestamp by up to 2 ms to align it with the interval.
TIMESTAMP_SLACK = 0.05

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: runcast
    authorization:
      type: Bearer
      credentials: {token}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


@attrs.frozen
class PrometheusServer:
    process: PeerProcess
    port: int

    async def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/PATH?params``; the ``data`` of a successful answer."""
        target = f"/api/v1/{path}?{urllib.parse.urlencode(params)}"
        reply = await http_get(self.port, target)
        body = reply.json()
        assert reply.status == 200, (target, reply)
        assert body["status"] == "success", (target, body)
        return body["data"]

    async def query(self, promql: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    async def matrix(self, promql: str) -> list[dict[str, Any]]:
        """A range-vector selector's raw samples, each with its scrape's timestamp."""
        data = await self.api("query", query=promql)
        assert data["resultType"] == "matrix", data
        result: list[dict[str, Any]] = data["result"]
        return result


@asynccontextmanager
async def scraping(demo: DemoProcess) -> AsyncIterator[PrometheusServer]:
    """A Prometheus scraping ``demo`` every second, with its own config and storage."""
    assert PROMETHEUS is not None
    with tempfile.TemporaryDirectory(prefix="runcast-prometheus-") as scratch:
        directory = Path(scratch)
        config = directory / "prometheus.yml"
        config.write_text(CONFIG.format(token=TOKEN, port=demo.port))
        port = free_loopback_port()
        argv = [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        async with running(argv, cwd=directory, stop_signal=signal.SIGTERM) as process:
            server = PrometheusServer(process, port)
            await _ready(server)
            yield server


async def _ready(server: PrometheusServer) -> None:
    async def ready() -> bool | None:
        if server.process.exited:
            raise AssertionError(f"prometheus exited: {server.process.describe()}")
        try:
            return (await http_get(server.port, "/-/ready")).status == 200 or None
        except OSError:
            return None  # not listening yet

    await poll_until(ready, 0.1)


async def _target_up(server: PrometheusServer, demo: DemoProcess) -> dict[str, Any]:
    """The demo's target, once a scrape of it succeeded."""

    async def scraped() -> dict[str, Any] | None:
        targets = (await server.api("targets"))["activeTargets"]
        if not targets:
            return None  # the scrape manager has not loaded the config yet
        assert [t["scrapeUrl"] for t in targets] == [f"http://127.0.0.1:{demo.port}/metrics"]
        target: dict[str, Any] = targets[0]
        assert target["health"] != "down", target  # its lastError says why
        return target if target["health"] == "up" else None

    return await poll_until(scraped)


async def _series(server: PrometheusServer, promql: str, count: int) -> list[dict[str, Any]]:
    """Wait until ``promql`` gives ``count`` series."""

    async def enough() -> list[dict[str, Any]] | None:
        result = await server.query(promql)
        return result if len(result) >= count else None

    return await poll_until(enough)


def _value(sample: list[Any]) -> float:
    return float(sample[1])


def _ms(stamp: float | str) -> int:
    return round(float(stamp) * 1000)


def _at_scrape(series: list[dict[str, Any]], stamp: float) -> dict[str, float]:
    """Per-``kind`` sums (key ``""`` for a metric without kinds) of one scrape's samples."""
    totals: dict[str, float] = {}
    for one in series:
        for at, value in one["values"]:
            if _ms(at) == _ms(stamp):
                kind = one["metric"].get("kind", "")
                totals[kind] = totals.get(kind, 0.0) + float(value)
    assert totals, f"no samples of the scrape at {stamp}"
    return totals


async def test_prometheus_scrapes_sane_values_that_agree_with_runcast(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            serving_demo(
                tmp_path,
                *("--interval", "1", "--seed", "11", "--concurrency", str(CONCURRENCY)),
                *("--budget-usd", "1000"),  # never exhausted: usage keeps flowing
                token=TOKEN,
            ) as demo,
            scraping(demo) as prometheus,
        ):
            target = await _target_up(prometheus, demo)
            assert target["lastError"] == ""
            assert target["scrapeInterval"] == "1s"

            running_now = await _series(prometheus, "runcast_tasks_running", 1)
            assert len(running_now) == 1
            assert 0 <= _value(running_now[0]["value"]) <= CONCURRENCY
            tokens = await _series(prometheus, "sum by (kind) (runcast_tokens_total)", 4)
            assert {s["metric"]["kind"] for s in tokens} == KINDS
            assert all(_value(s["value"]) >= 0 for s in tokens)
            cost = await _series(prometheus, "sum(runcast_cost_usd_total)", 1)
            assert _value(cost[0]["value"]) >= 0

            started = time.time()
            await _counters_grow(prometheus)
            await _agrees_with_the_session(prometheus, demo)
            await _gauges_stay_in_range(prometheus, since=started)
            await _conventional_metrics(prometheus, demo)
        assert demo.process.returncode == 0, demo.describe()


async def _counters_grow(prometheus: PrometheusServer) -> None:
    """Tokens and cost grow between two scrapes, and never go down on the way."""
    first = await _totals(prometheus)

    async def grown() -> tuple[float, float, float] | None:
        latest = await _totals(prometheus)
        if latest[0] > first[0] and latest[1] > first[1] and latest[2] > first[2]:
            return latest
        return None

    latest = await poll_until(grown, 0.5)
    window = f"[{int(latest[0] - first[0]) + 5}s]"
    for name in ("runcast_tokens_total", "runcast_cost_usd_total"):
        for series in await prometheus.matrix(name + window):
            values = [float(v) for _, v in series["values"]]
            assert values == sorted(values), (name, series["metric"], values)
            assert values[0] >= 0


async def _totals(prometheus: PrometheusServer) -> tuple[float, float, float]:
    """(scrape time, total tokens, total cost) as of the newest scrape."""
    stamp = await prometheus.query("max(timestamp(runcast_tokens_total))")
    tokens = await prometheus.query("sum(runcast_tokens_total)")
    cost = await prometheus.query("sum(runcast_cost_usd_total)")
    return _value(stamp[0]["value"]), _value(tokens[0]["value"]), _value(cost[0]["value"])


async def _agrees_with_the_session(prometheus: PrometheusServer, demo: DemoProcess) -> None:
    """A scrape taken between two reads of ``/api/session`` lies between them.

    Counters only grow, so what Prometheus stored for a scrape that started after
    the first read was served, and ended before the second was asked for, must lie
    between the two reads, kind by kind, for tokens and for cost.
    """
    before = await demo.session()
    served_before = time.time() + TIMESTAMP_SLACK

    async def scrape_after_the_read() -> float | None:
        stamp = (await _totals(prometheus))[0]
        return stamp if stamp > served_before else None

    # Stored by now, so it ended before the second read is asked for.
    stamp = await poll_until(scrape_after_the_read)
    after = await demo.session()
    tokens = _at_scrape(await prometheus.matrix("runcast_tokens_total[30s]"), stamp)
    cost = _at_scrape(await prometheus.matrix("runcast_cost_usd_total[30s]"), stamp)
    for kind in KINDS:
        assert before[f"{kind}_tokens"] <= tokens[kind] <= after[f"{kind}_tokens"], kind
    assert before["total_tokens"] <= sum(tokens.values()) <= after["total_tokens"]
    tolerance = 1e-9
    cost_scraped = sum(cost.values())
    assert before["estimated_cost_usd"] - tolerance <= cost_scraped
    assert cost_scraped <= after["estimated_cost_usd"] + tolerance
    assert 0 <= after["tasks_running"] <= CONCURRENCY


async def _gauges_stay_in_range(prometheus: PrometheusServer, *, since: float) -> None:
    window = f"[{int(time.time() - since) + 5}s]"
    for series in await prometheus.matrix("runcast_tasks_running" + window):
        values = [float(v) for _, v in series["values"]]
        assert len(values) >= 2, values
        assert all(0 <= v <= CONCURRENCY for v in values), values


async def _conventional_metrics(prometheus: PrometheusServer, demo: DemoProcess) -> None:
    """Start time, provider label, queue wait and process metrics, as Prometheus stored them."""
    started_at = (await demo.session())["started_at"]
    assert started_at is not None
    [start] = await _series(prometheus, "runcast_session_start_time_seconds", 1)
    expected = datetime.fromisoformat(started_at).timestamp()
    assert abs(_value(start["value"]) - expected) < 1e-3, (start, started_at)
    assert _value(start["value"]) <= time.time()

    by_provider = await _series(prometheus, "sum by (provider) (runcast_tokens_total)", 1)
    providers = {s["metric"]["provider"] for s in by_provider}
    assert providers <= PROVIDERS, providers

    [waited] = await _series(prometheus, "runcast_task_queue_wait_seconds_count", 1)
    assert _value(waited["value"]) >= 1
    [untracked] = await _series(prometheus, "runcast_task_queue_wait_untracked_total", 1)
    assert _value(untracked["value"]) == 0
    for name in ("runcast_task_retries_total", "runcast_task_timeouts_total"):
        [counter] = await _series(prometheus, name, 1)
        assert _value(counter["value"]) >= 0, name
    [memory] = await _series(prometheus, "process_resident_memory_bytes", 1)
    assert _value(memory["value"]) > 0


async def _promtool_check(body: bytes) -> tuple[int, list[str]]:
    assert PROMTOOL is not None
    result = await trio.run_process(
        [PROMTOOL, "check", "metrics"],
        stdin=body,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).decode().splitlines()


async def test_promtool_checks_the_live_exposition(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving_demo(
            tmp_path, "--interval", "1", "--seed", "5", "--budget-usd", "1000", token=TOKEN
        ) as demo:

            async def usage_recorded() -> bool | None:  # then every family has samples
                return "runcast_tokens_total{" in (await demo.get("/metrics")).body.decode() or None

            await poll_until(usage_recorded)
            text = await demo.get("/metrics")
            openmetrics = await demo.get("/metrics", {"Accept": SCRAPE_ACCEPT})

    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    code, findings = await _promtool_check(text.body)
    assert (code, findings) == (0, []), findings

    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    body = openmetrics.body.decode()
    assert body.endswith("# EOF\n")
    for unit_line in (
        "# UNIT runcast_cost_usd usd\n",
        "# UNIT runcast_task_queue_wait_seconds seconds\n",
        "# UNIT runcast_session_start_time_seconds seconds\n",
    ):
        assert unit_line in body, unit_line
    # promtool lints the text format only: an OpenMetrics counter family is named
    # without ``_total`` (``# HELP runcast_tokens ...``), so it reports each
    # ``..._total`` sample as a family without HELP.  Anything else is a real finding.
    code, findings = await _promtool_check(openmetrics.body)
    assert code in (0, 3), findings
    for finding in findings:
        family, _, complaint = finding.partition(" ")
        assert complaint == "no help text", finding
        assert family.endswith("_total"), finding
        assert f"# HELP {family.removesuffix('_total')} " in body, finding
        assert f"# TYPE {family.removesuffix('_total')} counter" in body, finding
