"""The fan-out servers, one per process: runcast, ``websockets`` on asyncio, and raw sockets.

Run by the fan-out benchmark as ``python -m bench._fanout_server KIND``.  Each
serves ``/ws`` on a loopback port, answers a ``{"type":"subscribe",...}`` with
``subscribed`` and a ``session_update`` snapshot, and on each ``fire`` sends
every subscriber the frames of one state change: the event (``executor_paused``
or ``executor_resumed``) and the ``session_update`` that follows it.  The
baselines send frames encoded by runcast's own codec, so every server sends
the same bytes.

Control, one JSON object per line: stdout first says ``{"port": P}``; stdin
``{"cmd": "fire"}`` is answered ``{"fired": T}`` (``time.monotonic`` just
before the state change), ``{"cmd": "stats"}`` with this process's CPU seconds
and RSS, ``{"cmd": "quit"}`` ends it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence

import attrs

from broadcaster import SessionAggregate
from events import ExecutorPaused, ExecutorResumed, Publisher

from ._report import raise_open_file_limit, rss_bytes

KINDS = ("raw", "websockets", "runcast")
MAX_CONNECTIONS = 20_000
BACKLOG = 4096


@attrs.frozen
class ReferenceFrames:
    """Text frames exactly as runcast encodes them, for the baselines to send."""

    subscribed: str
    snapshot: str
    rounds: tuple[tuple[str, str], ...]  # (event, session_update), alternating pause/resume


def reference_frames() -> ReferenceFrames:
    publisher = Publisher()
    aggregate = SessionAggregate(session_id=uuid.uuid4().hex, clock=time.monotonic)
    snapshot = publisher.publish(aggregate.snapshot())
    assert snapshot is not None
    rounds: list[tuple[str, str]] = []
    for event in (
        ExecutorPaused(by="operator", reason="websocket command from 127.0.0.1:40000"),
        ExecutorResumed(by="operator", reason="websocket command from 127.0.0.1:40000"),
    ):
        published = publisher.publish(event)
        assert published is not None
        aggregate.apply(published)
        update = publisher.publish(aggregate.snapshot())
        assert update is not None
        rounds.append((published.wire, update.wire))
    subscribed = json.dumps({"type": "subscribed", "task_id": "*", "since": None})
    return ReferenceFrames(subscribed, snapshot.wire, tuple(rounds))


def say(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def stats(subscribers: int) -> dict[str, object]:
    return {"cpu": time.process_time(), "rss": rss_bytes(), "subscribers": subscribers}


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
