"""The server's bounded per-task output (issue 20, part 1): lines kept, numbered, cut, counted."""

from __future__ import annotations

import pytest

from api.server._output_buffer import OutputBuffer
from events import Publisher, TaskCancelled, TaskCompleted, TaskOutput, TaskStarted


def _fed(buffer: OutputBuffer) -> Publisher:
    publisher = Publisher()
    publisher.add_listener(buffer.record)
    return publisher


def test_packed_lines_are_split_and_numbered_in_order() -> None:
    buffer = OutputBuffer()
    publisher = _fed(buffer)
    publisher.publish(TaskOutput(task_id="t1", line="a\nb", lines=2))
    publisher.publish(TaskOutput(task_id="t1", stream="stderr", line="boom"))
    publisher.publish(TaskOutput(task_id="t2", line="other"))
    entry = buffer.get("t1")
    assert entry is not None
    page = entry.page(since=0, before=None, limit=10, stream=None)
    assert [(line.number, line.stream, line.text) for line in page] == [
        (1, "stdout", "a"),
        (2, "stdout", "b"),
        (3, "stderr", "boom"),
    ]
    assert page[0].seq == page[1].seq < page[2].seq
    only_stderr = entry.page(since=None, before=None, limit=10, stream="stderr")
    assert [line.text for line in only_stderr] == ["boom"]


def test_pages_start_and_end_inside_events() -> None:
    buffer = OutputBuffer()
    publisher = _fed(buffer)
    publisher.publish(TaskOutput(task_id="t1", line="1\n2\n3", lines=3))
    publisher.publish(TaskOutput(task_id="t1", stream="stderr", line="4\n5\n6", lines=3))
    entry = buffer.get("t1")
    assert entry is not None

    def texts(since: int | None, before: int | None, limit: int) -> list[str]:
        return [ln.text for ln in entry.page(since=since, before=before, limit=limit, stream=None)]

    assert texts(since=2, before=None, limit=2) == ["3", "4"]
    assert texts(since=None, before=5, limit=3) == ["2", "3", "4"]
    assert texts(since=None, before=None, limit=4) == ["3", "4", "5", "6"]
    assert [ln.text for ln in entry.page(since=1, before=None, limit=9, stream="stderr")] == [
        "4",
        "5",
        "6",
    ]


def test_pages_forward_backward_and_newest() -> None:
    buffer = OutputBuffer()
    publisher = _fed(buffer)
    for n in range(1, 11):
        publisher.publish(TaskOutput(task_id="t1", line=f"line {n}"))
    entry = buffer.get("t1")
    assert entry is not None
    assert [ln.number for ln in entry.page(since=3, before=None, limit=2, stream=None)] == [4, 5]
    assert [ln.number for ln in entry.page(since=None, before=None, limit=3, stream=None)] == [
        8,
        9,
        10,
    ]
    assert [ln.number for ln in entry.page(since=None, before=8, limit=3, stream=None)] == [5, 6, 7]


def test_lines_per_task_cap_counts_what_is_cut() -> None:
    buffer = OutputBuffer(lines_per_task=3)
    publisher = _fed(buffer)
    publisher.publish(TaskOutput(task_id="t1", line="\n".join(str(n) for n in range(10)), lines=10))
    entry = buffer.get("t1")
    assert entry is not None
    assert [line.text for line in entry.page(since=0, before=None, limit=9, stream=None)] == [
        "7",
        "8",
        "9",
    ]
    assert (entry.not_kept, entry.first_kept, entry.seen) == (7, 8, 10)
    assert buffer.not_kept_total == 7
    assert buffer.kept_lines == 3


def test_total_chars_cut_the_oldest_line_of_any_task() -> None:
    # Each line costs its length plus one: three lines of 9 characters fit in 30.
    buffer = OutputBuffer(max_chars=30)
    publisher = _fed(buffer)
    publisher.publish(TaskOutput(task_id="old", line="x" * 9))
    publisher.publish(TaskOutput(task_id="new", line="y" * 9))
    publisher.publish(TaskOutput(task_id="new", line="z" * 9))
    publisher.publish(TaskOutput(task_id="new", line="w" * 9))
    old, new = buffer.get("old"), buffer.get("new")
    assert old is not None
    assert new is not None
    assert (old.kept, old.not_kept) == (0, 1)
    assert (new.kept, new.not_kept) == (3, 0)
    assert buffer.chars <= 30


def test_empty_lines_are_bounded_too() -> None:
    buffer = OutputBuffer(max_chars=100)
    publisher = _fed(buffer)
    for _ in range(50):
        publisher.publish(TaskOutput(task_id="t1", line="\n" * 99, lines=100))
    assert buffer.kept_lines <= 100
    assert buffer.not_kept_total == 50 * 100 - buffer.kept_lines


def test_order_of_lines_stays_bounded_when_one_task_writes_forever() -> None:
    buffer = OutputBuffer(lines_per_task=10)
    publisher = _fed(buffer)
    for n in range(5_000):
        publisher.publish(TaskOutput(task_id="t1", line=str(n)))
    assert len(buffer._order) <= 3 * buffer.kept_lines + buffer.lines_per_task


def test_tasks_past_the_bound_are_forgotten_and_counted() -> None:
    buffer = OutputBuffer(max_tasks=2)
    publisher = _fed(buffer)
    for task_id in ("a", "b", "c"):
        publisher.publish(TaskOutput(task_id=task_id, line="hi"))
    assert buffer.get("a") is None
    assert buffer.tasks_forgotten == 1
    assert buffer.not_kept_total == 1


def test_the_task_written_to_longest_ago_is_forgotten_first() -> None:
    buffer = OutputBuffer(max_tasks=2)
    publisher = _fed(buffer)
    publisher.publish(TaskOutput(task_id="long-running", line="1"))
    publisher.publish(TaskOutput(task_id="short", line="x"))
    publisher.publish(TaskOutput(task_id="long-running", line="2"))
    publisher.publish(TaskStarted(task_id="next", name="next"))
    assert buffer.get("short") is None
    kept = buffer.get("long-running")
    assert kept is not None
    assert [ln.text for ln in kept.page(since=0, before=None, limit=9, stream=None)] == ["1", "2"]


def test_state_follows_the_task_and_an_end_is_final() -> None:
    buffer = OutputBuffer()
    publisher = _fed(buffer)
    publisher.publish(TaskStarted(task_id="t1", name="t1"))
    entry = buffer.get("t1")
    assert entry is not None
    assert entry.state == "running"
    publisher.publish(TaskCompleted(task_id="t1"))
    publisher.publish(TaskCancelled(task_id="t1", reason="too late"))
    assert entry.state == "completed"


@pytest.mark.parametrize("field", ["lines_per_task", "max_chars", "max_tasks"])
def test_bounds_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        OutputBuffer(**{field: 0})
