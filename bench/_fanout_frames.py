"""What the three fan-out servers share: the frames they send and their listen backlog.

The baselines (``_raw_server``, ``_websockets_server``) send frames encoded by
runcast's own codec, so every server of the fan-out benchmark sends the same
bytes; ``_runcast_server`` makes its own through the real pipeline.
"""

from __future__ import annotations

import json
import time
import uuid

import attrs

from broadcaster import SessionAggregate
from events import ExecutorPaused, ExecutorResumed, Publisher

#: Pending connections a listener queues: the load generators connect thousands at once.
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
