"""ClusterControls without Redis: answered at once as the executor answers, then queued
in order (bounded), with the events the control script appends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import trio

from api.cluster import ClusterError, ControlCommand, ControlRefused, ControlResult
from api.cluster._controls import ClusterControls
from api.cluster._tasks import TaskTable
from broadcaster import SessionAggregate
from events import (
    BudgetChanged,
    EventCodec,
    Published,
    RelayPublisher,
    TaskFailed,
    TaskQueued,
    TaskStarted,
    TaskUsage,
)

WHEN = datetime(2026, 5, 1, tzinfo=UTC)
CODEC = EventCodec()


def _controls(max_pending: int = 10) -> tuple[ClusterControls, RelayPublisher]:
    table = TaskTable()
    aggregate = SessionAggregate("s", clock=lambda: 0.0)
    publisher = RelayPublisher()
    publisher.add_listener(table.apply)

    def fold(item: Published) -> None:
        aggregate.apply(item)

    publisher.add_listener(fold)
    controls = ClusterControls(table, aggregate, clock=lambda: WHEN, max_pending=max_pending)
    return controls, publisher


def _sent(controls: ClusterControls) -> list[tuple[str, str, list[str]]]:
    commands: list[ControlCommand] = []
    while True:
        try:
            commands.append(controls.receive.receive_nowait())
        except trio.WouldBlock:
            break
    return [
        (c.op, c.task_id, [CODEC.decode(wire).event_name for wire in c.events]) for c in commands
    ]


def test_commands_are_queued_in_order_with_their_events() -> None:
    controls, publisher = _controls()
    publisher.publish_at(1, WHEN, TaskQueued(task_id="a"))
    publisher.publish_at(2, WHEN, TaskQueued(task_id="b"))
    publisher.publish_at(3, WHEN, TaskStarted(task_id="b"))
    publisher.publish_at(4, WHEN, TaskFailed(task_id="b", error="x"))
    controls.pause(reason="lunch")
    controls.cancel("a")
    controls.retry("b")
    controls.set_budget(2.5)
    assert _sent(controls) == [
        ("pause", "*", ["executor_paused"]),
        ("cancel", "a", ["task_cancelled"]),
        ("retry", "b", ["task_queued"]),
        ("budget", "*", ["budget_changed"]),
    ]


def test_answers_as_the_executor_answers() -> None:
    controls, publisher = _controls()
    publisher.publish_at(1, WHEN, TaskQueued(task_id="a"))
    publisher.publish_at(2, WHEN, TaskStarted(task_id="a"))
    publisher.publish_at(3, WHEN, TaskFailed(task_id="a", error="x"))
    assert controls.cancel("a") is False  # already ended
    with pytest.raises(ClusterError, match="no task with id 'zz'"):
        controls.cancel("zz")
    with pytest.raises(ClusterError, match="concurrency is per worker in cluster mode"):
        controls.set_concurrency(8)
    with pytest.raises(ClusterError, match="budget must be a finite number >= 0 or None"):
        controls.set_budget(float("nan"))
    controls.resume()  # not paused: nothing to do, as on one host
    assert _sent(controls) == []


def test_resume_is_refused_while_spend_has_reached_the_budget() -> None:
    controls, publisher = _controls()
    publisher.publish_at(1, WHEN, BudgetChanged(budget_usd=0.01))
    publisher.publish_at(2, WHEN, TaskQueued(task_id="a"))
    publisher.publish_at(3, WHEN, TaskUsage(task_id="a", input_tokens=1, cost_usd=0.01))
    with pytest.raises(ControlRefused, match=r"cannot resume: spent \$0.0100 of the \$0.0100"):
        controls.resume()


def test_commands_beyond_the_bound_are_refused_saying_so() -> None:
    controls, _ = _controls(max_pending=2)
    controls.set_budget(1.0)
    controls.set_budget(2.0)
    with pytest.raises(ClusterError, match="2 operator commands are already waiting for Redis"):
        controls.set_budget(3.0)
    assert len(_sent(controls)) == 2


def test_a_budget_crossing_gives_what_one_host_publishes() -> None:
    controls, _ = _controls()
    warned, pause = controls.crossing_events(
        ControlResult(True, crossed=("warning",), spent_usd=0.9, budget_usd=1.0)
    )
    assert [CODEC.decode(wire).event_name for wire in warned] == ["budget_warning"]
    assert pause is None
    assert [r.src_seq for r in controls.own_appends(warned + warned)] == [1, 2]
    none, exhausted = controls.crossing_events(
        ControlResult(
            True, crossed=("warning", "exhausted"), spent_usd=2.0, budget_usd=1.0, paused=True
        )
    )
    assert none == []
    assert exhausted is not None
    assert (exhausted.op, exhausted.by) == ("pause", "budget")
    assert [CODEC.decode(wire).event_name for wire in exhausted.events] == [
        "budget_warning",
        "budget_exhausted",
        "executor_paused",
    ]
