"""The job file's ``on_budget`` key: checked like the other top-level keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor import JobFileError, load_job_file

TASK = '[[task]]\ncommand = ["true"]\n'


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("value", ["pause", "suspend", "cancel"])
def test_each_policy_is_read(tmp_path: Path, value: str) -> None:
    job = load_job_file(_write(tmp_path, f'budget_usd = 1\non_budget = "{value}"\n{TASK}'))
    assert job.on_budget == value


def test_absent_means_not_given(tmp_path: Path) -> None:
    assert load_job_file(_write(tmp_path, TASK)).on_budget is None


@pytest.mark.parametrize("value", ['"stop"', "true", '["cancel"]', '"Pause"'])
def test_a_bad_value_names_file_line_and_field(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, f"budget_usd = 1\non_budget = {value}\n{TASK}")
    with pytest.raises(JobFileError) as caught:
        load_job_file(path)
    error = caught.value
    assert (error.path, error.line, error.field) == (str(path), 2, "on_budget")
    assert str(error).startswith(f"{path}:2: on_budget: expected one of pause, suspend, cancel")
