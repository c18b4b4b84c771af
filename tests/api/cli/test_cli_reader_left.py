"""A reader that leaves (``runcast … | head``) ends a command quietly with 141."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from api.cli._exits import consists_of
from api.cli._main import main
from api.store._store import SessionStore


@pytest.fixture
def reader_gone() -> Iterator[io.TextIOWrapper]:
    """A pipe whose read end is already closed, as after ``head`` exits."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    stdout = open(write_end, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    try:
        yield stdout
    finally:
        structlog.reset_defaults()
        stdout.close()


def test_main_exits_141_and_silences_stdout(
    reader_gone: io.TextIOWrapper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "runcast.db"
    store = SessionStore.open(path)
    store.begin_session("s-1")
    store.close()
    # Set here, not in the fixture: pytest's capture takes sys.stdout back between phases.
    monkeypatch.setattr("sys.stdout", reader_gone)
    assert main(["sessions", "--store", str(path)]) == 128 + signal.SIGPIPE
    # stdout now goes to /dev/null: the interpreter's last flush cannot fail again.
    reader_gone.write("more\n")
    reader_gone.flush()


def _broken_pipes_only(exc: BaseException) -> bool:
    return consists_of(exc, BrokenPipeError)


def test_only_broken_pipes_looks_inside_nursery_groups() -> None:
    pipe = BrokenPipeError(32, "Broken pipe")
    assert _broken_pipes_only(pipe)
    assert _broken_pipes_only(ExceptionGroup("n", [pipe, ExceptionGroup("m", [pipe])]))
    assert not _broken_pipes_only(ExceptionGroup("n", [pipe, ValueError("other")]))
    assert not _broken_pipes_only(ConnectionResetError())
    assert not _broken_pipes_only(KeyboardInterrupt())
