"""Recording a session into a store file from a list of events, as a run would."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import trio
import trio.testing

from api.store._recorder import serve_store_recorder
from api.store._store import SessionStore
from events import Event, Publisher


async def record_session(
    path: Path,
    session_id: str,
    events: Iterable[Event],
    *,
    job_key: str | None = None,
    end_status: str | None = None,
) -> None:
    """Record ``events`` into a new session of the store at ``path`` through the
    recorder, then close the store; ``end_status`` ends the session first."""
    store = SessionStore.open(path)
    store.begin_session(session_id, job_key=job_key)
    publisher = Publisher()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_store_recorder(
                store, publisher, session_id=session_id, task_status=task_status
            )
        )
        for event in events:
            publisher.publish(event)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    if end_status is not None:
        store.end_session(session_id, status=end_status)
    store.close()
