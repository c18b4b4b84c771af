"""Store back-pressure holds new task starts, and only the pause it made itself."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from api import ServerConfig, StackSettings, open_stack
from api._stack import _StorePressure
from api.server._exceptions import ConfigError
from api.store._store import SessionStore


def _settings(session_id: str) -> StackSettings:
    return StackSettings(server=ServerConfig(host="127.0.0.1", port=0), session_id=session_id)


async def test_backpressure_holds_starts_and_leaves_an_operator_pause_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = SessionStore.open(":memory:")
    store.begin_session("s")
    async with open_stack(_settings("s"), store=store) as stack:
        pressure = _StorePressure(stack.executor)
        pressure(True)
        assert stack.executor.is_paused
        pressure(False)
        assert not stack.executor.is_paused
        stack.executor.pause(by="operator", reason="review")
        pressure(True)
        pressure(False)
        assert stack.executor.is_paused
        stack.executor.resume()


async def test_a_store_without_a_session_id_is_refused() -> None:
    settings = StackSettings(server=ServerConfig(host="127.0.0.1", port=0))
    with pytest.raises(ConfigError, match="session_id"):
        async with open_stack(settings, store=SessionStore.open(":memory:")):
            pass
