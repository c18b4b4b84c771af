"""What the terminal clients show: a session view built from frames, and its text form.

Pure code (no I/O): ``SessionView.apply`` folds server frames into the current
session snapshot and task rows; the ``format_*`` functions render them. What they
return still holds the server's text as sent: the writers escape it (``printable``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs

from events import TASK_END_EVENTS, parse_time

from ._money import format_usd

# Finished tasks kept for the table; the oldest are forgotten first.
MAX_FINISHED_ROWS = 1000

_STATE_OF_EVENT = {
    "task_queued": "queued",
    "task_started": "running",
    "task_retrying": "retrying",
    "task_completed": "completed",
    "task_failed": "failed",
    "task_cancelled": "cancelled",
}
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else 0.0  # type: ignore[arg-type]


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


@attrs.define
class TaskLine:
    """One task as the clients show it."""

    task_id: str
    name: str = ""
    state: str = "queued"
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    #: Tokens of models with no known price: their cost is not in ``cost_usd``.
    unpriced_tokens: int = 0
    error: str | None = None

    @classmethod
    def from_api(cls, row: dict[str, Any]) -> TaskLine:
        """A row of ``GET /api/tasks``."""
        error = row.get("error")
        return cls(
            task_id=str(row.get("task_id", "")),
            name=str(row.get("name") or ""),
            state=str(row.get("state") or "queued"),
            attempts=_int(row, "attempts"),
            started_at=_time(row.get("started_at")),
            ended_at=_time(row.get("ended_at")),
            cost_usd=_float(row, "estimated_cost_usd"),
            unpriced_tokens=_int(row, "unpriced_tokens"),
            error=error if isinstance(error, str) else None,
            **{key: _int(row, key) for key in _TOKEN_FIELDS},
        )

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "failed", "cancelled")

    def elapsed(self, now: datetime) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or now
        return max(0.0, (end - self.started_at).total_seconds())


@attrs.define
class SessionView:
    """The session snapshot and task rows, kept current from server frames.

    ``needs_resync`` says the task rows cannot be trusted any more (first
    connection, a gap, or a restarted server) and should be reloaded from
    ``GET /api/tasks``; ``last_seq`` is what to resubscribe ``since``.
    """

    session: dict[str, Any] | None = None
    session_received_at: float = 0.0
    tasks: dict[str, TaskLine] = attrs.field(factory=dict)
    last_seq: int | None = None
    needs_resync: bool = True
    stale: bool = True
    max_finished: int = MAX_FINISHED_ROWS

    def load_tasks(self, rows: list[dict[str, Any]]) -> None:
        self.tasks = {row.task_id: row for row in map(TaskLine.from_api, rows) if row.task_id}
        self._forget_finished()
        self.needs_resync = False

    def mark_stale(self) -> None:
        self.stale = True

    def duration(self, now: float) -> float:
        """Session duration, ticking on from the last snapshot (received at monotonic time)."""
        if self.session is None:
            return 0.0
        base = _float(self.session, "duration_seconds")
        return base if self.stale else base + max(0.0, now - self.session_received_at)

    def running(self) -> list[TaskLine]:
        return [row for row in self.tasks.values() if row.state == "running"]

    def apply(self, frame: dict[str, Any], now: float) -> str | None:
        """Fold one frame in; returns a one-line description worth logging, if any."""
        kind = frame.get("type")
        if kind == "gap":
            self.needs_resync = True
            first, last = frame.get("first_seq"), frame.get("last_seq")
            return f"missed events {first}..{last} ({frame.get('reason')}); reloading tasks"
        if kind == "error":
            return f"server error: {frame.get('error')}"
        if kind != "event":
            return None
        seq = frame.get("seq")
        data = frame.get("data")
        if not isinstance(seq, int) or not isinstance(data, dict):
            return None
        name = frame.get("event")
        if name == "session_update":
            return self._apply_session(seq, data, now)
        self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
        task_id = frame.get("task_id")
        if isinstance(task_id, str) and task_id != "*":
            return self._apply_task(str(name), task_id, _time(frame.get("time")), data)
        return _describe_session_event(str(name), data)

    def _apply_session(self, seq: int, data: dict[str, Any], now: float) -> str | None:
        restarted = self.session is not None and (
            data.get("session_id") != self.session.get("session_id")
            or (self.last_seq is not None and seq < self.last_seq)
        )
        if restarted:
            # A new server process: its seqs start again and the old rows are not its tasks.
            self.tasks.clear()
            self.needs_resync = True
            self.last_seq = seq
        else:
            self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
        self.session = data
        self.session_received_at = now
        self.stale = False
        return "server restarted: new session" if restarted else None

    def _apply_task(
        self, name: str, task_id: str, moment: datetime | None, data: dict[str, Any]
    ) -> str | None:
        row = self.tasks.get(task_id)
        if row is None:
            row = self.tasks[task_id] = TaskLine(task_id)
        if name == "task_usage":
            tokens = 0
            for key in _TOKEN_FIELDS:
                tokens += _int(data, key)
                setattr(row, key, getattr(row, key) + _int(data, key))
            row.cost_usd += _float(data, "cost_usd")
            if data.get("cost_source") == "unpriced":
                row.unpriced_tokens += tokens
            return None
        state = _STATE_OF_EVENT.get(name)
        if state is None:
            return None
        row.state = state
        if isinstance(data.get("name"), str) and data["name"]:
            row.name = data["name"]
        row.attempts = max(row.attempts, _int(data, "attempt"))
        if name == "task_started":
            row.started_at, row.ended_at, row.error = moment, None, None
        elif name in TASK_END_EVENTS:
            row.ended_at = moment
            row.error = data.get("error") or data.get("reason") or None
            self._forget_finished()
        return _describe_task_event(name, row, data)

    def _forget_finished(self) -> None:
        finished = [key for key, row in self.tasks.items() if row.finished]
        for key in finished[: max(0, len(finished) - self.max_finished)]:
            del self.tasks[key]


def _describe_task_event(name: str, row: TaskLine, data: dict[str, Any]) -> str | None:
    label = f"task {row.task_id}" + (f" ({row.name})" if row.name else "")
    if name == "task_started":
        return f"{label} started (attempt {row.attempts})"
    if name == "task_completed":
        return f"{label} completed in {format_duration(_float(data, 'duration_seconds'))}"
    if name == "task_failed":
        return f"{label} failed: {data.get('error', '')}"
    if name == "task_cancelled":
        return f"{label} cancelled: {data.get('reason', '')}"
    if name == "task_retrying":
        return f"{label} retrying in {_float(data, 'delay_seconds'):.1f}s: {data.get('error', '')}"
    return None


def _describe_session_event(name: str, data: dict[str, Any]) -> str | None:
    if name in ("executor_paused", "executor_resumed"):
        verb = "paused" if name == "executor_paused" else "resumed"
        reason = f": {data['reason']}" if data.get("reason") else ""
        return f"executor {verb} by {data.get('by', '?')}{reason}"
    if name == "budget_changed":
        return f"budget set to {format_usd(data.get('budget_usd'))} by {data.get('by', '?')}"
    if name in ("budget_warning", "budget_exhausted"):
        what = "warning" if name == "budget_warning" else "exhausted"
        spent, budget = format_usd(data.get("spent_usd")), format_usd(data.get("budget_usd"))
        return f"budget {what}: spent {spent} of {budget}"
    return None


def format_duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def session_parts(data: dict[str, Any], duration: float) -> list[str]:
    """The parts of the session line: duration, tokens, cost, counts, state, budget."""
    cache = f"cache r{_int(data, 'cache_read_tokens'):,}/w{_int(data, 'cache_write_tokens'):,}"
    tokens = (
        f"tokens {_int(data, 'total_tokens'):,} (in {_int(data, 'input_tokens'):,} "
        f"out {_int(data, 'output_tokens'):,} {cache})"
    )
    counts = (
        f"running {_int(data, 'tasks_running')} queued {_int(data, 'tasks_queued')} "
        f"done {_int(data, 'tasks_completed')} failed {_int(data, 'tasks_failed')}"
    )
    if _int(data, "tasks_cancelled"):
        counts += f" cancelled {_int(data, 'tasks_cancelled')}"
    cost = format_usd(_float(data, "estimated_cost_usd"))
    unpriced = _int(data, "unpriced_tokens")
    if unpriced:
        cost += f"* (* {unpriced:,} tokens of unpriced models not included)"
    return [
        f"session {format_duration(duration)}",
        tokens,
        cost,
        counts,
        "PAUSED" if data.get("is_paused") is True else "live",
        _format_budget(data),
    ]


def format_session_line(data: dict[str, Any], duration: float) -> str:
    """The one-line session summary of ``watch`` and ``status``."""
    return " | ".join(session_parts(data, duration))


def _format_budget(data: dict[str, Any]) -> str:
    budget = data.get("budget_usd")
    if not isinstance(budget, int | float) or isinstance(budget, bool):
        return "no budget"
    spent = _float(data, "estimated_cost_usd")
    share = f" ({spent / budget:.0%})" if budget > 0 else ""
    return f"budget {format_usd(spent)} of {format_usd(budget)}{share}"


def short_name(name: str) -> str:
    return name if len(name) <= 24 else name[:23] + "…"


def elapsed_text(row: TaskLine, now: datetime) -> str:
    elapsed = row.elapsed(now)
    return format_duration(elapsed) if elapsed is not None else "-"


def _tokens_text(row: TaskLine) -> str:
    return (
        f"in {row.input_tokens:,} out {row.output_tokens:,} "
        f"cache {row.cache_read_tokens:,}/{row.cache_write_tokens:,}"
    )


def cost_text(row: TaskLine) -> str:
    """The task's cost; ``*`` when tokens of unpriced models are not in it (as the summary)."""
    text = format_usd(row.cost_usd)
    return text + "*" if row.unpriced_tokens else text


def format_task_table(rows: list[TaskLine], now: datetime | None = None) -> list[str]:
    """``status``'s task table: one header line and one line per task."""
    moment = now or datetime.now(UTC)
    header = f"{'TASK':<20} {'NAME':<24} {'STATE':<10} {'ATT':>3} {'ELAPSED':>9}  TOKENS  COST"
    lines = [header]
    for row in rows:
        line = (
            f"{row.task_id:<20} {short_name(row.name):<24} {row.state:<10} {row.attempts:>3} "
            f"{elapsed_text(row, moment):>9}  {_tokens_text(row)}  {cost_text(row)}"
        )
        if row.error:
            line += f"  error: {row.error}"
        lines.append(line)
    return lines
