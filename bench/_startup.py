"""Start-up: each client command against an unreachable server, vs importing trio.

What an operator waits for before ``runcast status`` even connects: the
interpreter, the imports and the parser. Each client command is run as the
console script runs it, at a port where nothing listens (``127.0.0.1:9``), so
it ends as soon as the connection is refused (exit 3); the baseline is
``python -c "import trio, trio_websocket"``, the least a client needs. The two
run in turn (baseline, command, baseline, command, ...) so that a change of the
machine's speed hits both; the figure is the median of the per-pair ratios of
wall time. Target: at most 2.0 for every command.

Those commands end before they draw anything, and the tables are drawn with rich,
imported only to draw; ``_startup_drawn`` times ``status`` and ``watch`` against a
live server, on a pseudo-terminal (drawn with rich) and piped (``drawn=True``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import trio

from ._report import emit, median, table, write_result
from ._startup_drawn import measure_drawn

#: A port where nothing listens: the client fails at once with "cannot connect".
UNREACHABLE = "ws://127.0.0.1:9/ws"
TARGET_RATIO = 2.0
BASELINE = ("-c", "import trio, trio_websocket")
#: Each client command, as an operator types it, at the unreachable server.
COMMANDS: dict[str, tuple[str, ...]] = {
    "status": ("status", UNREACHABLE, "--timeout", "5"),
    "pause": ("pause", UNREACHABLE, "--timeout", "5"),
    "resume": ("resume", UNREACHABLE, "--timeout", "5"),
    "cancel": ("cancel", "t1", UNREACHABLE, "--timeout", "5"),
    "budget": ("budget", "set", "1", UNREACHABLE, "--timeout", "5"),
    "logs": ("logs", "t1", UNREACHABLE, "--timeout", "5"),
    "watch": ("watch", UNREACHABLE),
}
EXIT_UNREACHABLE = 3


@attrs.frozen
class StartupConfig:
    #: Counted pairs (baseline, command) per command, after ``warmup`` uncounted ones.
    runs: int = 15
    warmup: int = 1
    commands: tuple[str, ...] = tuple(COMMANDS)
    #: Also time ``status`` and ``watch`` drawing against a live server.
    drawn: bool = True


#: GNU time reports the peak RSS of the process it starts. The process's own rusage
#: cannot: Linux keeps the peak of the image it replaced at exec (this benchmark's).
GNU_TIME = Path("/usr/bin/time")


@attrs.frozen
class Run:
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float | None
    exit_code: int


def runcast_command() -> list[str]:
    """The console script next to this interpreter, else what it runs."""
    script = Path(sys.executable).with_name("runcast")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from api import main; sys.exit(main())"]


def run_once(argv: list[str], peak_file: Path | None) -> Run:
    """One process: wall time and CPU time (``wait4``), peak RSS from GNU time if given."""
    if peak_file is not None:
        argv = [str(GNU_TIME), "-f", "%M", "-o", str(peak_file), *argv]
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    peak = None if peak_file is None else int(peak_file.read_text().split()[-1]) / 1024
    return Run(wall, usage.ru_utime + usage.ru_stime, peak, process.returncode)


def measure(config: StartupConfig) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak" if GNU_TIME.exists() else None
        commands = {name: _pairs(config, COMMANDS[name], peak_file) for name in config.commands}
    result = {
        "runs": config.runs,
        "baseline": " ".join(["python", *BASELINE]),
        "client_command": " ".join(["runcast", "COMMAND ...", UNREACHABLE]),
        "target_ratio": TARGET_RATIO,
        "commands": commands,
        "worst_median_wall_ratio": max(c["median_wall_ratio"] for c in commands.values()),
    }
    if config.drawn:
        baseline = [sys.executable, *BASELINE]
        result["drawn"] = measure_drawn(
            runcast_command(), baseline, runs=config.runs, warmup=config.warmup
        )
    return result


def _pairs(config: StartupConfig, command: tuple[str, ...], peak: Path | None) -> dict[str, Any]:
    baseline = [sys.executable, *BASELINE]
    argv = [*runcast_command(), *command]
    pairs: list[tuple[Run, Run]] = []
    for index in range(config.warmup + config.runs):
        pair = (run_once(baseline, peak), run_once(argv, peak))
        if index >= config.warmup:
            pairs.append(pair)
    return _summary(pairs)


def _peak(runs: list[Run]) -> float | None:
    peaks = [run.peak_rss_mib for run in runs if run.peak_rss_mib is not None]
    return median(peaks) if peaks else None


def _summary(pairs: list[tuple[Run, Run]]) -> dict[str, Any]:
    codes = sorted({command.exit_code for _, command in pairs})
    if codes != [EXIT_UNREACHABLE]:
        # Anything else means the command did not run as measured (a usage error is quicker).
        raise RuntimeError(f"expected every run to exit {EXIT_UNREACHABLE}, got {codes}")
    return {
        "median_wall_seconds": median(command.wall_seconds for _, command in pairs),
        "median_baseline_wall_seconds": median(base.wall_seconds for base, _ in pairs),
        "median_wall_ratio": median(c.wall_seconds / b.wall_seconds for b, c in pairs),
        "median_cpu_ratio": median(c.cpu_seconds / b.cpu_seconds for b, c in pairs),
        "median_peak_rss_mib": _peak([command for _, command in pairs]),
        "median_baseline_peak_rss_mib": _peak([base for base, _ in pairs]),
    }


def report(result: dict[str, Any]) -> None:
    rows = [
        [
            name,
            summary["median_wall_seconds"] * 1000,
            summary["median_baseline_wall_seconds"] * 1000,
            summary["median_wall_ratio"],
            summary["median_cpu_ratio"],
            summary["median_peak_rss_mib"] or "-",
            summary["median_baseline_peak_rss_mib"] or "-",
            "yes" if summary["median_wall_ratio"] <= TARGET_RATIO else "NO",
        ]
        for name, summary in result["commands"].items()
    ]
    emit(
        table(
            f"Client start-up vs {result['baseline']} (median of {result['runs']} pairs)",
            [
                "command",
                "wall ms",
                "baseline ms",
                "wall ratio",
                "cpu ratio",
                "peak MiB",
                "baseline MiB",
                "<= 2",
            ],
            rows,
        )
    )


def report_drawn(drawn: dict[str, Any], runs: int) -> None:
    rows = [
        [
            name,
            summary["median_wall_seconds"] * 1000,
            summary["median_baseline_wall_seconds"] * 1000,
            summary["median_wall_ratio"],
        ]
        for name, summary in drawn.items()
    ]
    emit(
        table(
            f"Drawing against a live server (status to its exit, watch to its first screen; "
            f"median of {runs} pairs)",
            ["command", "wall ms", "baseline ms", "wall ratio"],
            rows,
        )
    )


async def main(config: StartupConfig, results_dir: Path) -> dict[str, Any]:
    result = await trio.to_thread.run_sync(measure, config)
    report(result)
    if "drawn" in result:
        report_drawn(result["drawn"], result["runs"])
    write_result("startup", result, directory=results_dir)
    return result
