"""Job files: TOML describing commands to run, checked completely before anything runs.

```toml
concurrency = 2          # optional
budget_usd = 1.50        # optional
on_budget = "suspend"    # optional: pause (default), suspend or cancel
prices = "prices.toml"   # optional, relative to the job file
[[task]]
id = "summarise-a"       # optional; generated as task-N when absent
command = ["python3", "agent.py", "a.txt"]
model = "claude-sonnet-4-5"
```

``tomllib`` reports no positions for values, so errors find their line by
scanning the text for the task's ``[[task]]`` header and then the key.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any

import attrs

from ._checks import name_problem
from ._exceptions import InvalidArgumentError, JobFileError
from ._suspension import ON_BUDGET, OnBudget
from .pricing import PriceTable, PriceTableError, load_price_table
from .process import CommandSpec

TOP_LEVEL_KEYS = frozenset(("concurrency", "budget_usd", "on_budget", "prices", "task"))
TASK_KEYS = frozenset(attrs.fields_dict(CommandSpec))
# Beyond what CommandSpec checks, what the rest of a run can hold: every usage
# event carries the model and provider (task_usage admits MAX_NAME characters),
# and integers go to the store and JSON readers as 64-bit ones.
NAME_KEYS = frozenset(("model", "provider"))
MAX_INTEGER = 2**63 - 1

_TASK_HEADER = re.compile(r"^\s*\[\[\s*task\s*\]\]")
_ANY_HEADER = re.compile(r"^\s*\[")
_TOML_POSITION = re.compile(r"at line (\d+)")


@attrs.frozen
class JobFile:
    path: str
    concurrency: int | None
    budget_usd: float | None
    tasks: tuple[CommandSpec, ...]
    prices: PriceTable | None = None
    #: What an exhausted budget does to running tasks; None: not given (``pause``).
    on_budget: OnBudget | None = None


@attrs.frozen
class _Locator:
    """Finds the line of a top-level key or of a key inside the n-th ``[[task]]``."""

    lines: tuple[str, ...]

    def task_start(self, index: int) -> int | None:
        seen = -1
        for number, line in enumerate(self.lines):
            if _TASK_HEADER.match(line):
                seen += 1
                if seen == index:
                    return number
        return None

    def key(self, key: str, task: int | None = None) -> int | None:
        """1-based line of ``key``; the task's header line if the key is not found."""
        if task is None:
            start, header = 0, None
        else:
            header = self.task_start(task)
            if header is None:
                return None
            start = header + 1
        pattern = re.compile(
            rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*="""
        )
        sub_table = re.compile(rf"^\s*\[\s*task\s*\.\s*{re.escape(key)}\s*\]")
        for number in range(start, len(self.lines)):
            line = self.lines[number]
            if pattern.match(line) or (task is not None and sub_table.match(line)):
                return number + 1
            if _TASK_HEADER.match(line) or (task is None and _ANY_HEADER.match(line)):
                break
        return None if header is None else header + 1


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _integer_problem(value: object) -> str | None:
    """An integer too large for the run (TOML's are not bounded); None: nothing wrong.

    Checked first: one too large for a float makes ``math.isfinite`` raise.
    """
    if not isinstance(value, int) or -MAX_INTEGER <= value <= MAX_INTEGER:
        return None
    digits = len(str(abs(value)))
    return f"must be within -{MAX_INTEGER:,}..{MAX_INTEGER:,}, got a number of {digits} digits"


class _Loader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.name = str(path)
        self.where = _Locator(tuple(text.splitlines()))

    def fail(
        self, message: str, *, field: str | None = None, task: int | None = None, label: str = ""
    ) -> JobFileError:
        line = self.where.key(field, task) if field is not None else None
        if line is None and task is not None:
            start = self.where.task_start(task)
            line = None if start is None else start + 1
        subject = None
        if task is not None:
            subject = f"task {task + 1}" + (f" ({label!r})" if label else "")
        return JobFileError(message, path=self.name, line=line, task=subject, field=field)

    def load(self, data: dict[str, Any]) -> JobFile:
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                raise self.fail(
                    f"unknown key; allowed top-level keys are {sorted(TOP_LEVEL_KEYS)}", field=key
                )
        for key in ("concurrency", "budget_usd"):
            problem = _integer_problem(data.get(key))
            if problem is not None:
                raise self.fail(problem, field=key)
        concurrency = data.get("concurrency")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise self.fail(f"expected an integer >= 1, got {concurrency!r}", field="concurrency")
        budget = data.get("budget_usd")
        if budget is not None and (not _number(budget) or budget < 0):
            raise self.fail(f"expected a number of USD >= 0, got {budget!r}", field="budget_usd")
        on_budget = data.get("on_budget")
        if on_budget is not None and on_budget not in ON_BUDGET:
            raise self.fail(
                f"expected one of {', '.join(ON_BUDGET)}, got {on_budget!r}", field="on_budget"
            )
        prices = self._prices(data.get("prices"))
        tasks = self._tasks(data.get("task"))
        return JobFile(
            self.name,
            concurrency,
            None if budget is None else float(budget),
            tasks,
            prices,
            on_budget,
        )

    def _prices(self, value: object) -> PriceTable | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail("expected the path of a price table (TOML)", field="prices")
        try:
            return load_price_table(self.path.parent / value)
        except PriceTableError as exc:
            raise self.fail(str(exc), field="prices") from exc

    def _tasks(self, value: object) -> tuple[CommandSpec, ...]:
        if value is None:
            raise self.fail("no [[task]] entries: nothing to run")
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise self.fail("expected [[task]] tables", field="task")
        explicit: dict[str, int] = {}
        for index, entry in enumerate(value):
            task_id = entry.get("id")
            if isinstance(task_id, str) and task_id in explicit:
                first = explicit[task_id] + 1
                raise self.fail(
                    f"duplicate id {task_id!r} (also used by task {first})",
                    field="id",
                    task=index,
                    label=task_id,
                )
            if isinstance(task_id, str):
                explicit[task_id] = index
        specs = [self._task(index, entry) for index, entry in enumerate(value)]
        return tuple(self._with_ids(specs, set(explicit)))

    def _task(self, index: int, entry: dict[str, Any]) -> CommandSpec:
        task_id = entry.get("id")
        label = task_id if isinstance(task_id, str) else ""
        for key in entry:
            if key not in TASK_KEYS:
                raise self.fail(
                    f"unknown key; allowed keys are {sorted(TASK_KEYS)}",
                    field=key,
                    task=index,
                    label=label,
                )
        if "command" not in entry:
            raise self.fail("missing", field="command", task=index, label=label)
        for key in ("shell", "command", *sorted(set(entry) - {"shell", "command"})):
            if key in entry:
                self._check_field(index, label, key, entry)
        options = dict(entry)
        if isinstance(options.get("cwd"), str):
            cwd = self.path.parent / options["cwd"]
            if not cwd.is_dir():
                raise self.fail(
                    f"directory {str(cwd)!r} does not exist", field="cwd", task=index, label=label
                )
            options["cwd"] = str(cwd)
        return CommandSpec(**options)

    def _check_field(self, index: int, label: str, key: str, entry: dict[str, Any]) -> None:
        """Build a spec from the fields so far, so the error is about ``key``."""
        problem = _integer_problem(entry[key])
        if problem is not None:
            raise self.fail(problem, field=key, task=index, label=label)
        partial = {name: entry[name] for name in ("shell", key) if name in entry}
        if key != "command":
            partial["command"] = ["true"]
        try:
            CommandSpec(**partial)
        except InvalidArgumentError as exc:
            message = str(exc).removeprefix(f"{key}: ")
            raise self.fail(message, field=key, task=index, label=label) from exc
        problem = name_problem(entry[key]) if key in NAME_KEYS else None
        if problem is not None:
            raise self.fail(problem, field=key, task=index, label=label)

    def _with_ids(self, specs: list[CommandSpec], used: set[str]) -> list[CommandSpec]:
        named: list[CommandSpec] = []
        for index, spec in enumerate(specs):
            if spec.id is None:
                number = index + 1
                while f"task-{number}" in used:
                    number += 1
                used.add(f"task-{number}")
                spec = attrs.evolve(spec, id=f"task-{number}")
            named.append(spec)
        return named


def load_job_file(path: str | Path) -> JobFile:
    """Read and check a job file; ``JobFileError`` names the file, line, task and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JobFileError(f"cannot read job file: {exc}", path=str(path)) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_POSITION.search(str(exc))
        line = int(found.group(1)) if found else None
        raise JobFileError(f"not valid TOML: {exc}", path=str(path), line=line) from exc
    return _Loader(path, text).load(data)
