"""The executor speaks the event model's vocabulary: its states, actors and task-id limit.

``events`` is the one home of ``TaskState``, ``END_STATES``, ``Actor`` and
``MAX_TASK_ID``; what the executor re-exports for compatibility is the same
object, and what it checks it checks against those.
"""

from __future__ import annotations

from typing import get_args

import pytest

import events
import executor
from events import MAX_TASK_ID, Actor, Publisher
from executor import CommandSpec, InvalidArgumentError, TaskContext, open_executor


async def noop(ctx: TaskContext) -> None:
    return None


def test_the_executors_states_are_the_event_models() -> None:
    assert executor.TaskState is events.TaskState
    assert executor.TERMINAL_STATES is events.END_STATES
    assert set(executor.TRANSITIONS) == set(events.TASK_STATES)
    assert {state for state, moves in executor.TRANSITIONS.items() if not moves} == (
        events.END_STATES
    )


async def test_who_may_pause_is_the_event_models_actors() -> None:
    async with open_executor(Publisher()) as ex:
        for actor in get_args(Actor):
            ex.pause(by=actor)
            ex.resume(by=actor)
        with pytest.raises(InvalidArgumentError, match="by must be one of"):
            ex.pause(by="robot")


async def test_task_ids_are_limited_as_the_event_model_limits_them() -> None:
    longest = "x" * MAX_TASK_ID
    CommandSpec(command=["true"], id=longest)
    with pytest.raises(InvalidArgumentError, match=f"at most {MAX_TASK_ID} characters"):
        CommandSpec(command=["true"], id=longest + "x")
    async with open_executor(Publisher()) as ex:
        ex.submit(noop, task_id=longest)
        with pytest.raises(InvalidArgumentError, match=f"<= {MAX_TASK_ID} chars"):
            ex.submit(noop, task_id=longest + "x")
