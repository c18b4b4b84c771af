"""``runcast run``'s --retry-failed, --only and --accept-changes: bad combinations refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from api import main


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.toml"
    path.write_text('[[task]]\nid = "a"\ncommand = ["true"]\n', encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--only", "a"], "--only and --accept-changes go with --retry-failed"),
        (["--accept-changes"], "--only and --accept-changes go with --retry-failed"),
        (
            ["--retry-failed", "--fresh"],
            "--retry-failed reopens the newest session; --fresh starts a new one",
        ),
    ],
)
def test_flags_that_need_or_exclude_retry_failed_are_refused(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    store = tmp_path / "s.db"
    code = main(["run", str(job), "--store", str(store), "--port", "0", *flags])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"runcast run: {message}"
    assert not store.exists()  # refused before the store is opened


def test_only_needs_task_ids(job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(job), "--retry-failed", "--only", "a,,b"])
    assert exit_info.value.code == 2
    assert "expected task ids separated by commas, got 'a,,b'" in capsys.readouterr().err
