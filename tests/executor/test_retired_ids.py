"""The executor's forgotten task ids: exact membership, packed small, reserved forever."""

from __future__ import annotations

import tracemalloc

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from events import Publisher
from executor import DuplicateTaskError, TaskContext, UnknownTaskError, open_executor
from executor._retired import BUCKETS, RetiredIds

# Ids that stress the framing: NULs, lone surrogates, ids that are prefixes,
# suffixes or concatenations of others.
task_ids = st.text(
    alphabet=st.sampled_from(["a", "b", "-", "0", "\x00", "é", "\ud800", "😀"]),
    min_size=1,
    max_size=6,
)


@given(st.sets(task_ids, max_size=40), st.lists(task_ids, max_size=40))
def test_membership_is_exact(added: set[str], probes: list[str]) -> None:
    retired = RetiredIds()
    for task_id in added:
        retired.add(task_id)
    for task_id in [*added, *probes]:
        assert (task_id in retired) == (task_id in added), task_id
    assert len(retired) == len(added)
    assert sorted(retired) == sorted(added)


def test_neighbours_in_one_bucket_do_not_match_each_other() -> None:
    retired = RetiredIds()
    # Enough ids that every bucket holds several, joined by separators.
    for number in range(10 * BUCKETS):
        retired.add(f"job-{number}")
    assert all(f"job-{number}" in retired for number in range(10 * BUCKETS))
    for absent in ("job-", "ob-1", "job-1-", "job-10240", "job", "", "-1"):
        assert absent not in retired
    assert 1 not in retired  # not a str


def _demo_ids(count: int) -> list[str]:
    return [f"summarise-{number:04d}" for number in range(count)]


def test_a_retired_id_costs_its_bytes_not_a_set_entry() -> None:
    count = 20_000
    ids = _demo_ids(count)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        retired = RetiredIds()
        for task_id in ids:
            retired.add(task_id)
        packed = tracemalloc.take_snapshot()
        as_set = set(ids)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    packed_per_id = sum(s.size_diff for s in packed.compare_to(before, "filename")) / count
    set_per_id = sum(s.size_diff for s in after.compare_to(packed, "filename")) / count
    # The strings themselves are another ~64 bytes each that a set keeps alive.
    assert packed_per_id < 25, packed_per_id
    assert set_per_id > 25, set_per_id
    assert retired.packed_bytes == sum(len(i) + 1 for i in ids) + BUCKETS
    assert len(as_set) == len(retired)


async def noop(ctx: TaskContext) -> None:
    return None


async def test_forgotten_ids_stay_reserved_and_generated_ids_skip_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_executor(Publisher(), keep_finished=0) as executor:
        await executor.submit(noop, task_id="task-3").wait()
        await executor.submit(noop, task_id="odd\x00id").wait()
        # A generated id starts from the count of ids in use and skips taken ones.
        first = executor.submit(noop)
        await first.wait()
        second = executor.submit(noop)
        await second.wait()
        assert (first.task_id, second.task_id) == ("task-4", "task-5")
        assert executor.finished_evicted == 4
        assert executor.tasks() == []
        for task_id in ("task-3", "task-4", "task-5", "odd\x00id"):
            assert executor.has_task(task_id)
            with pytest.raises(DuplicateTaskError):
                executor.submit(noop, task_id=task_id)
            assert executor.cancel(task_id) is False
            with pytest.raises(UnknownTaskError, match="no longer kept"):
                executor.task(task_id)
        assert not executor.has_task("task-1")
        assert not executor.has_task("odd")
