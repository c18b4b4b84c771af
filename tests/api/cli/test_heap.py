"""The CLI's start-up gc tuning: what it does, and that only the real entry point does it."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest
import structlog

import api.cli._main
from api import main
from api.cli._heap import GC_THRESHOLDS, settled_heap


@pytest.fixture(autouse=True)
def _reset_structlog() -> object:
    yield
    structlog.reset_defaults()


def test_settled_heap_freezes_what_exists_and_undoes_it() -> None:
    before_threshold = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with settled_heap((1_234, 11, 12)):
        # Everything alive at start-up (imports, price data) is out of collections.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (1_234, 11, 12)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before_threshold
    assert len(GC_THRESHOLDS) == 3


def _calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(api.cli._main, "settle_heap", lambda: calls.append("settled"))
    return calls


def test_the_console_script_settles_the_heap_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _calls(monkeypatch)
    monkeypatch.setattr(sys, "argv", ["runcast", "run", str(tmp_path / "missing.toml")])
    assert main() == 2  # the missing job file is reported after the settling
    assert calls == ["settled"]


def test_a_caller_passing_argv_keeps_its_gc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _calls(monkeypatch)
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert calls == []


def test_short_commands_do_not_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _calls(monkeypatch)
    monkeypatch.setattr(sys, "argv", ["runcast", "sessions", "--store", ":memory:"])
    main()
    assert calls == []
