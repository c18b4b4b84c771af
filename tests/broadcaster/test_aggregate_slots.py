"""The aggregate stays slotted with its task states in a mixin (``_task_states``).

A mixin without ``__slots__ = ()`` would give every ``SessionAggregate`` a
``__dict__`` again, silently: a misspelt attribute would then be set instead
of raising.
"""

from __future__ import annotations

import pytest

from broadcaster import SessionAggregate


def test_the_aggregate_with_its_task_states_mixin_has_no_instance_dict() -> None:
    aggregate = SessionAggregate("s1", clock=lambda: 0.0)
    assert not hasattr(aggregate, "__dict__")
    with pytest.raises(AttributeError):
        aggregate.misspelt_attribute = 1  # type: ignore[attr-defined]
