"""What ``runcast submit`` sends: the job's tasks, their task_queued, the session's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cluster._submit import SubmitOptions, prepare_submission
from executor import JobFileError, PriceTableError

PRICES = '[models."m"]\ninput = 3.0\noutput = 15.0\n'


def _job(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "job.toml"
    path.write_text(
        f'{extra}\n[[task]]\nid = "a"\ncommand = ["echo", "a"]\npriority = 2\n'
        '[[task]]\ncommand = ["echo", "b"]\nname = "bee"\nretries = 1\n',
        encoding="utf-8",
    )
    return path


def test_tasks_go_with_their_task_queued_as_run_queues_them(tmp_path: Path) -> None:
    submission = prepare_submission(SubmitOptions(job_file=_job(tmp_path)))
    assert [task.task_id for task in submission.tasks] == ["a", "task-2"]
    assert submission.tasks[1].spec.retries == 1
    frames = [json.loads(task.event_json) for task in submission.tasks]
    assert [(f["event"], f["task_id"], f["seq"]) for f in frames] == [
        ("task_queued", "a", 0),
        ("task_queued", "task-2", 0),
    ]
    assert frames[0]["data"] == {"name": "echo a", "attempt": 1, "priority": 2}
    assert frames[1]["data"]["name"] == "bee"
    settings = submission.settings
    assert (settings.budget_usd, settings.prices, settings.on_budget) == (None, "", "pause")
    assert settings.startup_events == ()


def test_the_job_files_settings_apply_and_flags_override_them(tmp_path: Path) -> None:
    (tmp_path / "prices.toml").write_text(PRICES, encoding="utf-8")
    extra = 'budget_usd = 2.5\non_budget = "suspend"\nprices = "prices.toml"'
    from_job = prepare_submission(SubmitOptions(job_file=_job(tmp_path, extra))).settings
    assert (from_job.budget_usd, from_job.on_budget, from_job.prices) == (2.5, "suspend", PRICES)
    (tmp_path / "other.toml").write_text(PRICES.replace("3.0", "4.0"), encoding="utf-8")
    flags = SubmitOptions(
        job_file=_job(tmp_path, extra),
        budget_usd=1.0,
        prices=tmp_path / "other.toml",
        on_budget="cancel",
        start_paused=True,
    )
    settings = prepare_submission(flags).settings
    assert (settings.budget_usd, settings.on_budget) == (1.0, "cancel")
    assert "input = 4.0" in settings.prices
    assert settings.start_paused
    events = [json.loads(text) for text in settings.startup_events]
    assert [(e["event"], e["data"]["by"]) for e in events] == [
        ("budget_changed", "startup"),
        ("executor_paused", "startup"),
    ]
    assert events[0]["data"]["budget_usd"] == 1.0
    assert events[1]["data"]["reason"] == "started paused"


def test_a_bad_price_table_fails_as_for_run(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[models."m"]\ninput = -1\noutput = 1\n', encoding="utf-8")
    with pytest.raises(PriceTableError, match=r"bad\.toml: model 'm': input: must be finite"):
        prepare_submission(SubmitOptions(job_file=_job(tmp_path), prices=tmp_path / "bad.toml"))


def test_a_bad_job_file_names_file_line_and_field(tmp_path: Path) -> None:
    path = _job(tmp_path, "concurrency = 0")
    with pytest.raises(JobFileError, match=r"job\.toml:1: concurrency: expected an integer >= 1"):
        prepare_submission(SubmitOptions(job_file=path))


def test_the_event_stream_bound_is_a_flag_whose_default_is_the_links(tmp_path: Path) -> None:
    from api.cli._cluster_args import DEFAULT_EVENTS_MAXLEN as CLI_DEFAULT
    from api.cli._main import build_parser
    from api.cluster import DEFAULT_EVENTS_MAXLEN

    assert CLI_DEFAULT == DEFAULT_EVENTS_MAXLEN
    job = _job(tmp_path)
    args = build_parser().parse_args(
        ["submit", str(job), "--redis", "redis://127.0.0.1:1", "--session", "s"]
    )
    assert args.events_maxlen == DEFAULT_EVENTS_MAXLEN
    bounded = SubmitOptions(job_file=job, events_maxlen=500)
    assert prepare_submission(bounded).settings.events_maxlen == 500
