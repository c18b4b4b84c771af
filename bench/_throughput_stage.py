"""One throughput stage, once, for an instruction counter (bench README §2).

``python -m bench._throughput_stage N STAGES`` runs ``N`` no-op tasks through
the bare nursery (``STAGES`` = ``bare``) or the executor with the listed
pipeline stages (comma-separated, from ``bench._pipeline.STAGES``; empty for
executor and publisher alone) and exits.  Under ``valgrind --tool=callgrind``
the difference between ``N`` and ``0`` tasks, divided by ``N``, is the
instructions per task: unlike wall or CPU time it does not move when other
processes share the machine (threads included: the store's worker counts).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trio

from ._throughput import ThroughputConfig, run_bare, run_pipeline


async def run_stage(tasks: int, stages: str) -> None:
    config = ThroughputConfig(tasks=tasks)
    if stages == "bare":
        await run_bare(config)
        return
    with tempfile.TemporaryDirectory(prefix="runcast-stage-") as tmp:
        await run_pipeline(config, Path(tmp), tuple(s for s in stages.split(",") if s))


def main(argv: list[str]) -> None:
    if len(argv) != 2 or not argv[0].isdigit():
        raise SystemExit("usage: python -m bench._throughput_stage TASKS bare|[STAGE,...]")
    trio.run(run_stage, int(argv[0]), argv[1])


if __name__ == "__main__":
    main(sys.argv[1:])
