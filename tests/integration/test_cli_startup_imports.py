"""The client commands load only what they need: not the server, store, executor or prices.

Each command runs in a fresh interpreter as the console script runs it
(``from api import main``), against a port where nothing listens, and reports
which of the heavy modules it imported. ``run`` is the control: it needs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UNREACHABLE = "ws://127.0.0.1:9/ws"
HEAVY = (
    "genai_prices",
    "prometheus_client",
    "executor",
    "broadcaster",
    "structlog",
    "sqlite3",
    "api.server",
    "api.store",
    "api._stack",
    # Drawing a terminal table: only once there is something to draw (bench section 7).
    "rich",
)
PROBE = """
import json, sys
from api import main
code = main(sys.argv[1:])
heavy = sorted(name for name in {heavy!r} if name in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy}}))
"""

CLIENT_COMMANDS = [
    ["status", UNREACHABLE, "--timeout", "5"],
    ["pause", UNREACHABLE, "--timeout", "5"],
    ["resume", UNREACHABLE, "--timeout", "5"],
    ["cancel", "t1", UNREACHABLE, "--timeout", "5"],
    ["budget", "set", "1", UNREACHABLE, "--timeout", "5"],
    ["logs", "t1", UNREACHABLE, "--timeout", "5"],
    ["watch", UNREACHABLE],
]


def _probe(argv: list[str]) -> dict[str, Any]:
    finished = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report: dict[str, Any] = json.loads(finished.stdout.splitlines()[-1])
    return report


@pytest.mark.parametrize("argv", CLIENT_COMMANDS, ids=[argv[0] for argv in CLIENT_COMMANDS])
def test_client_commands_import_nothing_heavy(argv: list[str]) -> None:
    assert _probe(argv) == {"code": 3, "heavy": []}  # 3: the server is unreachable


def test_run_still_loads_the_stack(tmp_path: Path) -> None:
    report = _probe(["run", str(tmp_path / "missing.toml")])
    assert report["code"] == 2  # the job file is missing
    assert {"executor", "api.server", "api.store", "structlog"} <= set(report["heavy"])
