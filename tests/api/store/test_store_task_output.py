"""A task's output read back from the store's history (issue 20, part 1: ``logs --store``)."""

from __future__ import annotations

import pytest

from api.store._output import (
    CHUNK,
    UnknownTaskError,
    check_task,
    output_pruned,
    session_of_task,
    task_output,
)
from api.store._rows import RowBuilder
from api.store._store import MEMORY, SessionStore
from events import (
    OutputStream,
    Published,
    Publisher,
    TaskFailed,
    TaskOutput,
    TaskQueued,
    TaskStarted,
)


def _stored(*sessions: tuple[str, list[Published]]) -> SessionStore:
    store = SessionStore.open(MEMORY)
    for session_id, items in sessions:
        store.begin_session(session_id)
        store.write_rows(RowBuilder(session_id).rows(items))
    return store


def _run(
    publisher: Publisher, task_id: str, lines: list[tuple[OutputStream, str]]
) -> list[Published]:
    items = [publisher.publish(TaskQueued(task_id=task_id, name=task_id))]
    items.append(publisher.publish(TaskStarted(task_id=task_id, name=task_id)))
    for stream, text in lines:
        event = TaskOutput(task_id=task_id, stream=stream, line=text, lines=text.count("\n") + 1)
        items.append(publisher.publish(event))
    items.append(publisher.publish(TaskFailed(task_id=task_id, error="exit code 1", exit_code=1)))
    return [item for item in items if item is not None]


def test_lines_come_back_in_order_split_and_of_that_task_only() -> None:
    publisher = Publisher()
    items = _run(publisher, "a", [("stdout", "one\ntwo"), ("stderr", "Traceback")])
    items += _run(publisher, "b", [("stdout", "not a's")])
    store = _stored(("s1", items))
    lines = list(task_output(store, "s1", "a"))
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", "one"),
        ("stdout", "two"),
        ("stderr", "Traceback"),
    ]
    assert lines[0].seq == lines[1].seq < lines[2].seq
    assert lines[0].time.endswith("Z")


def test_long_outputs_are_read_a_chunk_at_a_time_and_all_come_back() -> None:
    publisher = Publisher()
    lines: list[tuple[OutputStream, str]] = [("stdout", str(n)) for n in range(CHUNK * 2 + 7)]
    store = _stored(("s1", _run(publisher, "a", lines)))
    assert [line.text for line in task_output(store, "s1", "a")] == [t for _, t in lines]


def test_the_newest_session_with_the_task_is_the_default() -> None:
    store = _stored(
        ("old", _run(Publisher(), "a", [("stdout", "old")])),
        ("new", _run(Publisher(), "a", [("stdout", "new")])),
        ("other", _run(Publisher(), "b", [("stdout", "b")])),
    )
    assert session_of_task(store, "a") == "new"
    with pytest.raises(UnknownTaskError, match="no session in store :memory: ran a task 'zz'"):
        session_of_task(store, "zz")
    with pytest.raises(UnknownTaskError, match="session old has no task 'b'"):
        check_task(store, "old", "b")


def test_pruned_history_is_detected() -> None:
    publisher = Publisher()
    items = _run(publisher, "a", [("stdout", "x")])
    store = _stored(("s1", items))
    assert not output_pruned(store, "s1", "a")
    store.prune_events("s1", keep=2)
    assert output_pruned(store, "s1", "a")
