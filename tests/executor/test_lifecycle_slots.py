"""The lifecycle stays slotted with its workers in a mixin (``_workers``).

A mixin without ``__slots__ = ()`` would give every ``TaskLifecycle`` a
``__dict__`` again, silently: a misspelt attribute would then be set instead
of raising, and the hot object would grow.
"""

from __future__ import annotations

import pytest

from events import Publisher
from executor import open_executor


async def test_the_lifecycle_with_its_workers_mixin_has_no_instance_dict() -> None:
    async with open_executor(Publisher()) as executor:
        lifecycle = executor._lifecycle
        assert not hasattr(lifecycle, "__dict__")
        with pytest.raises(AttributeError):
            lifecycle.misspelt_attribute = 1  # type: ignore[attr-defined]
