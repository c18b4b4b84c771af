"""Where a recording serve node starts from: what its store already holds of the session.

A node restarted on its store reads only the stream's tail, so everything the store
has must come back first, without being recorded again:

* the store holds the session's whole history (from seq 1): it is replayed through
  the publisher, so the aggregate, the task table and the replay buffer are exactly
  what they were;
* the store kept only its newest events (``history_keep``): replaying those would
  count only them, so the totals come from the store's sums instead (usage of every
  attempt, end counts, duration, pause, budget), the task table from its task rows,
  and the node carries on after the store's last seq (replays from before it get a
  history gap).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import attrs
import structlog

from broadcaster import SessionBroadcaster
from events import (
    EventCodec,
    Published,
    RelayPublisher,
    SessionUpdate,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
    TaskState,
    parse_time,
)

from ..store import SessionStore
from ._tasks import TaskRow, TaskTable

log = structlog.get_logger("runcast.cluster")

_LIVE_EVENTS = {"queued": TaskQueued, "running": TaskStarted, "retrying": TaskRetrying}


@attrs.frozen
class StoreStart:
    """What the store gives a node: the events to replay, or the sums to start from."""

    last_seq: int
    replay: tuple[Published, ...] = ()
    previous: SessionUpdate | None = None
    tasks: tuple[TaskRow, ...] = ()

    @property
    def pruned(self) -> bool:
        return self.previous is not None


def _time(text: str | None) -> datetime | None:
    return None if text is None else parse_time(text)


def read_store(store: SessionStore, session_id: str, name: str) -> StoreStart:
    """Read the store's part of the session (``name``: the cluster session, the aggregate's id)."""
    codec = EventCodec()
    items = tuple(codec.decode(wire) for wire in store.history(session_id))
    if not items or items[0].seq == 1:
        return StoreStart(items[-1].seq if items else 0, replay=items)
    last_seq = store.last_seq(session_id)
    log.warning(
        "the store kept only the newest events of the session: starting from its sums",
        oldest_kept=items[0].seq,
        last_seq=last_seq,
    )
    record = store.session(session_id)
    previous = record.carried_on(session_id=name)
    rows = []
    for order, task in enumerate(store.tasks(session_id)):
        spent = store.usage_totals(session_id, task.task_id)
        rows.append(
            TaskRow(
                order,  # before every seq the stream brings: each task took one already
                task.task_id,
                task.name,
                state=cast(TaskState, task.state),
                attempts=task.attempts,
                started_at=_time(task.started_at),
                ended_at=_time(task.ended_at),
                input_tokens=spent.input_tokens,
                output_tokens=spent.output_tokens,
                cache_read_tokens=spent.cache_read_tokens,
                cache_write_tokens=spent.cache_write_tokens,
                cost_usd=spent.cost_usd,
                unpriced_tokens=spent.unpriced_tokens,
                error=task.error,
                exit_code=task.exit_code,
            )
        )
    return StoreStart(last_seq, previous=previous, tasks=tuple(rows))


def apply_store_start(
    start: StoreStart,
    publisher: RelayPublisher,
    broadcaster: SessionBroadcaster,
    table: TaskTable,
) -> None:
    """Bring the node to where the store left it (before the recorder listens)."""
    for item in start.replay:
        if item.seq > publisher.last_seq:
            publisher.publish_at(item.seq, item.time, item.event)
    if start.previous is None:
        return
    broadcaster.restore(start.previous)
    table.seed(start.tasks)
    # The tasks still queued or running count in the aggregate as they do on one host.
    codec, now = EventCodec(), datetime.now(UTC)
    for row in start.tasks:
        event = _LIVE_EVENTS.get(row.state)
        if event is not None:
            attempt = max(1, row.attempts)
            item = codec.publish(0, now, event(task_id=row.task_id, attempt=attempt))
            broadcaster.aggregate.apply(item)
