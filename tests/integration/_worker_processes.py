"""``runcast worker`` and ``runcast submit`` as real processes, and a session's events read back.

Workers write their output to files (not pipes nobody reads); ``fold_events`` sums a
session's event stream per task the way ``runcast run``'s summary table does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import redis
import trio
from _runcast_process import RUNCAST

PY = sys.executable
KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def write_job(path: Path, tasks: list[dict[str, Any]], extra: str = "") -> Path:
    """A job file of ``tasks`` (each: id, code run by python -c, optional retries)."""
    lines = [extra]
    for task in tasks:
        argv = ", ".join(json.dumps(arg) for arg in (PY, "-c", task["code"]))
        lines += ["[[task]]", f'id = "{task["id"]}"', f"command = [{argv}]"]
        if "retries" in task:
            lines.append(f"retries = {task['retries']}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def usage_code(index: int, *, sleep: float = 0.0, prefix: str = "") -> str:
    """Python that prints two usage lines (tokens depend on ``index``) around a sleep."""
    first = {
        "usage": {"input_tokens": 100 + index, "output_tokens": 10 * index, "cache_read_tokens": 7},
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "cost_usd": 0.001 * (index + 1),
    }
    second = {
        "usage": {"input_tokens": 3, "output_tokens": index, "cache_write_tokens": 11 * index},
        "model": "claude-haiku-4-5",
        "cost_usd": 0.0005,
    }
    return (
        f"import json, time\n{prefix}"
        f"print(json.dumps({first!r}), flush=True)\n"
        f"time.sleep({sleep})\n"
        f"print(json.dumps({second!r}), flush=True)\n"
        "print('done')\n"
    )


@attrs.define(eq=False)
class WorkerProcess:
    process: trio.Process
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)


def state_dir_of(directory: Path) -> Path:
    """The ledgers' directory of the workers started in ``directory`` (``start_worker``)."""
    return directory / "state"


async def start_worker(
    directory: Path, url: str, session: str, name: str, *options: str
) -> WorkerProcess:
    """A worker running in ``directory``; its ledger in ``state_dir_of(directory)``, so
    that workers of one test reap each other's orphans and no other test's."""
    await trio.Path(directory).mkdir(parents=True, exist_ok=True)
    log = directory / f"{name}.log"
    env = {**os.environ, "RUNCAST_STATE_DIR": str(state_dir_of(directory))}
    with log.open("wb") as out:
        process = await trio.lowlevel.open_process(
            [RUNCAST, "worker", "--redis", url, "--session", session, "--name", name, *options],
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return WorkerProcess(process, log)


async def runcast(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = await trio.run_process(
        [RUNCAST, *args],
        cwd=cwd,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def stream_frames(client: redis.Redis, session: str) -> list[dict[str, Any]]:
    """The session's events in stream order, each with the stream's seq and producer."""
    frames = []
    entries: list[tuple[str, dict[str, str]]] = client.xrange(f"runcast:{{{session}}}:events")  # type: ignore[assignment]
    for _entry_id, fields in entries:
        frame = json.loads(fields["event"])
        frame["seq"] = int(fields["seq"])
        frame["src"] = fields["src"]
        frames.append(frame)
    return frames


def kinds(frames: list[dict[str, Any]], task_id: str | None = None) -> list[str]:
    return [f["event"] for f in frames if task_id is None or f["task_id"] == task_id]


@attrs.frozen
class TaskFold:
    state: str
    attempts: int
    tokens: tuple[int, int, int, int]
    cost: str


def fold_events(frames: list[dict[str, Any]]) -> dict[str, TaskFold]:
    """Per task: end state, attempts started, tokens of each kind, cost (4 places)."""
    states: dict[str, str] = {}
    attempts: Counter[str] = Counter()
    tokens: dict[str, list[int]] = {}
    cost: dict[str, float] = {}
    for frame in frames:
        task, data = frame["task_id"], frame["data"]
        if frame["event"] == "task_started":
            attempts[task] += 1
        elif frame["event"] == "task_usage":
            counts = tokens.setdefault(task, [0, 0, 0, 0])
            for index, kind in enumerate(KINDS):
                counts[index] += data[kind]
            cost[task] = cost.get(task, 0.0) + (data["cost_usd"] or 0.0)
        elif frame["event"] in ("task_completed", "task_failed", "task_cancelled"):
            states[task] = frame["event"].removeprefix("task_")
    return {
        task: TaskFold(
            state,
            attempts[task],
            tuple(tokens.get(task, [0, 0, 0, 0])),  # type: ignore[arg-type]
            f"${cost.get(task, 0.0):.4f}",
        )
        for task, state in states.items()
    }


def fold_summary(output: str) -> dict[str, TaskFold]:
    """The same, from ``runcast run``'s summary table."""
    table = output[output.index("TASK") :].splitlines()[1:]
    folded = {}
    for row in table:
        cells = row.split()
        if len(cells) < 9 or cells[1] not in ("completed", "failed", "cancelled"):
            break
        counts = tuple(int(cell.replace(",", "")) for cell in cells[4:8])
        folded[cells[0]] = TaskFold(cells[1], int(cells[2]), counts, cells[8])  # type: ignore[arg-type]
    return folded


#: Seconds a test waits on worker processes and Redis for what it expects.
WAIT_TIMEOUT = 60


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll ``condition()`` (a process and Redis are not ours to wake us); bounded."""
    with trio.fail_after(WAIT_TIMEOUT):
        while True:
            if condition():
                return
            await trio.sleep(0.05)
