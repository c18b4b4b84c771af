"""The control channel of the benchmarks' child processes: one JSON object a line on stdout.

The fan-out servers and the readers' clients answer their orchestrator here
(``bench/_children.py`` reads it); nothing else may write to their stdout.
"""

from __future__ import annotations

import json
import sys
import time

from ._report import rss_bytes


def say(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def stats(subscribers: int) -> dict[str, object]:
    """This process's CPU seconds and RSS, and how many subscribers it serves."""
    return {"cpu": time.process_time(), "rss": rss_bytes(), "subscribers": subscribers}
