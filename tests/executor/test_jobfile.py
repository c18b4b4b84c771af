"""Job files: a valid one loads; each kind of mistake names file, line, task and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor import CommandSpec, InvalidArgumentError, JobFileError, load_job_file

VALID = """\
# nightly summaries
concurrency = 2
budget_usd = 1.50
prices = "prices.toml"

[[task]]
id = "summarise-a"
command = ["python3", "agent.py", "a.txt"]
model = "claude-sonnet-4-5"
provider = "anthropic"
timeout = 300
retries = 1

[[task]]
name = "shell one"
command = "echo hi | wc -c"
shell = true
cwd = "work"
env = { GREETING = "hi" }

[[task]]
command = ["true"]
priority = 3
"""


def write(tmp_path: Path, text: str, name: str = "job.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    write(tmp_path, '[models."claude-sonnet-4-5"]\ninput = 3\noutput = 15\n', "prices.toml")
    return tmp_path


def test_valid_job_file_loads(job_dir: Path) -> None:
    job = load_job_file(write(job_dir, VALID))
    assert job.concurrency == 2
    assert job.budget_usd == 1.5
    assert job.prices is not None
    assert job.prices.lookup("claude-sonnet-4-5", None) is not None
    first, second, third = job.tasks
    assert first == CommandSpec(
        id="summarise-a",
        command=("python3", "agent.py", "a.txt"),
        model="claude-sonnet-4-5",
        provider="anthropic",
        timeout=300,
        retries=1,
    )
    assert second.id == "task-2"
    assert second.command == "echo hi | wc -c"
    assert second.shell
    assert second.cwd == str(job_dir / "work")
    assert second.env == {"GREETING": "hi"}
    assert second.display_name == "shell one"
    assert (third.id, third.priority, third.display_name) == ("task-3", 3, "true")


def test_top_level_keys_are_optional(tmp_path: Path) -> None:
    job = load_job_file(write(tmp_path, '[[task]]\ncommand = ["true"]\n'))
    assert (job.concurrency, job.budget_usd, job.prices) == (None, None, None)
    assert job.tasks[0].id == "task-1"


def test_generated_ids_skip_explicit_ones(tmp_path: Path) -> None:
    text = '[[task]]\ncommand = ["true"]\n[[task]]\nid = "task-1"\ncommand = ["true"]\n'
    job = load_job_file(write(tmp_path, text))
    assert [t.id for t in job.tasks] == ["task-2", "task-1"]


BAD_TASK_PREFIX = '[[task]]\nid = "ok"\ncommand = ["true"]\n\n[[task]]\nid = "bad"\n'


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        ('command = "echo hi"\n', 7, "command", "only with shell = true"),
        ("command = []\n", 7, "command", "non-empty list"),
        ("command = [1, 2]\n", 7, "command", "must be a string"),
        ('command = ["x"]\ntimeout = -5\n', 8, "timeout", "must be > 0"),
        ('command = ["x"]\ntimeout = "soon"\n', 8, "timeout", "expected seconds"),
        ('command = ["x"]\nretries = 1.5\n', 8, "retries", "expected an integer"),
        ('command = ["x"]\nretries = -1\n', 8, "retries", "must be >= 0"),
        ('command = ["x"]\nshell = "yes"\n', 8, "shell", "expected true or false"),
        ('command = ["x"]\nenv = { A = 1 }\n', 8, "env", "table of NAME"),
        ('command = ["x"]\n\n[task.env]\nA = 1\n', 9, "env", "table of NAME"),
        ('command = ["x"]\nmodel = ""\n', 8, "model", "non-empty string"),
        ('command = ["x"]\ncwd = "missing-dir"\n', 8, "cwd", "does not exist"),
        ('command = ["x"]\ncomand = ["y"]\n', 8, "comand", "unknown key"),
        ("name = 'no command'\n", 5, "command", "missing"),
    ],
)
def test_bad_task_fields_name_file_line_task_and_field(
    tmp_path: Path, body: str, line: int, field: str, message: str
) -> None:
    path = write(tmp_path, BAD_TASK_PREFIX + body)
    with pytest.raises(JobFileError) as caught:
        load_job_file(path)
    error = caught.value
    assert (error.path, error.line, error.field) == (str(path), line, field)
    assert error.task == "task 2 ('bad')"
    assert str(error).startswith(f"{path}:{line}: task 2 ('bad'): {field}: ")
    assert message in str(error)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    text = '[[task]]\nid = "a"\ncommand = ["true"]\n[[task]]\nid = "a"\ncommand = ["true"]\n'
    path = write(tmp_path, text)
    with pytest.raises(JobFileError, match=r"job.toml:5: task 2 \('a'\): id: duplicate id 'a'"):
        load_job_file(path)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ('concurrency = 0\n[[task]]\ncommand = ["true"]\n', 1, "concurrency", ">= 1"),
        ('\nbudget_usd = "lots"\n[[task]]\ncommand = ["true"]\n', 2, "budget_usd", "USD"),
        ('colour = "red"\n[[task]]\ncommand = ["true"]\n', 1, "colour", "unknown key"),
        ('prices = "nope.toml"\n[[task]]\ncommand = ["true"]\n', 1, "prices", "cannot read"),
        ("concurrency = 2\n", None, None, "no [[task]] entries"),
    ],
)
def test_bad_top_level_keys(
    tmp_path: Path, text: str, line: int | None, field: str | None, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(JobFileError) as caught:
        load_job_file(path)
    assert (caught.value.line, caught.value.field, caught.value.task) == (line, field, None)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_bad_price_table_is_reported_through_the_job_file(tmp_path: Path) -> None:
    write(tmp_path, '[models."m"]\ninput = "x"\noutput = 1\n', "prices.toml")
    path = write(tmp_path, 'prices = "prices.toml"\n[[task]]\ncommand = ["true"]\n')
    with pytest.raises(JobFileError, match=r"job.toml:1: prices: .*prices.toml: model 'm': input"):
        load_job_file(path)


def test_invalid_toml_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[[task]]\ncommand = ["true"\nid = 3\n')
    with pytest.raises(JobFileError, match="not valid TOML") as caught:
        load_job_file(path)
    assert caught.value.line is not None


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(JobFileError, match="cannot read job file"):
        load_job_file(tmp_path / "absent.toml")


def test_command_spec_validates_when_built_directly() -> None:
    with pytest.raises(InvalidArgumentError, match="id: '\\*' is reserved"):
        CommandSpec(id="*", command=["true"])
    assert CommandSpec(command=["a", "b"]).command == ("a", "b")


NINES_400 = "9" * 400
INTEGER_BOUND = "must be within -9,223,372,036,854,775,807..9,223,372,036,854,775,807"
LONG_MODEL = "m" * 300


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        # Issue 17: these were accepted; the task then failed at its first usage
        # (a name task_usage refuses) or the loader raised OverflowError.
        pytest.param(
            f'model = "{LONG_MODEL}"', "model", "at most 256 characters, got 300", id="model"
        ),
        pytest.param(f'provider = "{"p" * 257}"', "provider", "at most 256", id="provider"),
        pytest.param(f"priority = {NINES_400}", "priority", "of 400 digits", id="priority"),
        pytest.param(f"priority = -{NINES_400}", "priority", INTEGER_BOUND, id="negative"),
        pytest.param(f"timeout = {NINES_400}", "timeout", "of 400 digits", id="timeout"),
        pytest.param(f"retries = {2**63}", "retries", INTEGER_BOUND, id="retries"),
    ],
)
def test_values_too_large_for_a_run_are_refused_before_it_starts(
    tmp_path: Path, body: str, field: str, message: str
) -> None:
    path = write(tmp_path, BAD_TASK_PREFIX + f'command = ["x"]\n{body}\n')
    with pytest.raises(JobFileError) as caught:
        load_job_file(path)
    error = caught.value
    assert (error.path, error.line, error.task, error.field) == (
        str(path),
        8,
        "task 2 ('bad')",
        field,
    )
    assert message in str(error)


def test_names_and_integers_at_their_bounds_are_accepted(tmp_path: Path) -> None:
    body = f'command = ["x"]\nmodel = "{"m" * 256}"\npriority = {-(2**63 - 1)}\nretries = 3\n'
    job = load_job_file(write(tmp_path, BAD_TASK_PREFIX + body))
    assert job.tasks[1].model == "m" * 256
    assert job.tasks[1].priority == -(2**63 - 1)


@pytest.mark.parametrize("field", ["budget_usd", "concurrency"])
def test_top_level_numbers_too_large_are_refused(tmp_path: Path, field: str) -> None:
    path = write(tmp_path, f'{field} = {NINES_400}\n[[task]]\ncommand = ["true"]\n')
    with pytest.raises(JobFileError) as caught:
        load_job_file(path)  # budget_usd: OverflowError from math.isfinite before
    assert (caught.value.line, caught.value.field) == (1, field)
    assert str(caught.value) == f"{path}:1: {field}: {INTEGER_BOUND}, got a number of 400 digits"
