"""The fan-out servers, one per process: runcast, ``websockets`` on asyncio, and raw sockets.

Run by the fan-out benchmark as ``python -m bench._fanout_server KIND``.  Each
serves ``/ws`` on a loopback port, answers a ``{"type":"subscribe",...}`` with
``subscribed`` and a ``session_update`` snapshot, and on each ``fire`` sends
every subscriber the frames of one state change: the event (``executor_paused``
or ``executor_resumed``) and the ``session_update`` that follows it.  The
baselines send frames encoded by runcast's own codec, so every server sends
the same bytes.

This module only picks the server; the frames they share are in
``_fanout_frames``, the control channel in ``_control``.  Control, one JSON
object per line: stdout first says ``{"port": P}``; stdin
``{"cmd": "fire"}`` is answered ``{"fired": T}`` (``time.monotonic`` just
before the state change), ``{"cmd": "stats"}`` with this process's CPU seconds
and RSS, ``{"cmd": "quit"}`` ends it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from ._fanout_frames import reference_frames
from ._report import raise_open_file_limit

KINDS = ("raw", "websockets", "runcast")
MAX_CONNECTIONS = 20_000


def quiet_logs() -> None:
    """No per-connection log lines: stdout is the control channel."""
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)


def main(argv: Sequence[str]) -> int:
    (kind,) = argv
    raise_open_file_limit(MAX_CONNECTIONS)
    quiet_logs()
    # Each server's module is imported in its own process only: the raw server's process
    # loads neither websockets nor runcast's server, so its RSS stays the baseline's.
    if kind == "raw":
        from ._raw_server import serve_raw

        serve_raw(reference_frames())
    elif kind == "websockets":
        from ._websockets_server import serve_websockets

        serve_websockets(reference_frames())
    elif kind == "runcast":
        from ._runcast_server import serve_runcast_bench

        serve_runcast_bench()
    else:
        raise SystemExit(f"unknown server kind {kind!r}; expected one of {KINDS}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
