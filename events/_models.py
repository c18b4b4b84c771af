"""Typed events: one frozen class per event name.

Every event carries the id of the task it is about; session-level events use
``"*"``.  The remaining fields are the event's ``data`` on the wire.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

import attrs

from ._exceptions import EventValidationError
from ._rules import (
    AWARE_TIME,
    BOOL,
    COUNT,
    FRACTION,
    INT,
    LINE_COUNT,
    MONEY,
    POSITIVE,
    SECONDS,
    SESSION,
    TASK_ID,
    bounded_text,
    checked,
    install_checks,
    one_of,
    optional,
)
from ._rules import (
    MAX_TASK_ID as MAX_TASK_ID,
)
from ._rules import (
    SESSION_TOPIC as SESSION_TOPIC,
)

MAX_OUTPUT_LINE = 4096
# Characters of output in one task_output (its lines and the newlines between
# them): no more than one line could hold before lines were packed, so what is
# bounded in events (the publisher's history, a subscriber's buffer) holds no
# more memory than it did (64 KiB events: the 10,000 events of history went
# from 80 MB to 1.3 GB at worst).
MAX_OUTPUT_TEXT = MAX_OUTPUT_LINE
MAX_TEXT = 2048
# Bounds on one usage record as a parser reads it (issue 17): far above any
# real run (a million-token context is 10**6), far below what overflows a
# SQLite INTEGER (2**63) or a float sum, so totals over any number of records
# a session can hold stay exact and finite.  A record outside them is output
# plus a warning, never a crash.
MAX_RECORD_TOKENS = 10**12
MAX_RECORD_COST_USD = 1e6
# Model and provider names, as TaskUsage's rules admit them.
MAX_NAME = 256

CostSource = Literal["reported", "computed", "user_table", "unpriced"]
COST_SOURCES: frozenset[str] = frozenset(("reported", "computed", "user_table", "unpriced"))
#: The stdout formats usage is read from (``TaskUsage.source``).
USAGE_FORMATS: tuple[str, ...] = (
    "runcast",
    "claude-code",
    "anthropic",
    "openai-chat",
    "openai-responses",
    "codex-exec",
    "gemini-json",
    "gemini-stream-json",
)
#: A task's state; ``END_STATES`` are the ones it never leaves.
TaskState = Literal["queued", "running", "retrying", "completed", "failed", "cancelled"]
TASK_STATES: tuple[TaskState, ...] = (
    "queued",
    "running",
    "retrying",
    "completed",
    "failed",
    "cancelled",
)
END_STATES: frozenset[TaskState] = frozenset(("completed", "failed", "cancelled"))
#: Who paused, resumed or set a budget.
Actor = Literal["operator", "budget", "startup", "system"]
ACTORS: frozenset[str] = frozenset(("operator", "budget", "startup", "system"))
OutputStream = Literal["stdout", "stderr"]
OUTPUT_STREAMS: frozenset[str] = frozenset(("stdout", "stderr"))


class TokenKinds(Protocol):
    """Anything that counts the four kinds of tokens."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cache_read_tokens(self) -> int: ...
    @property
    def cache_write_tokens(self) -> int: ...


def total_tokens(counts: TokenKinds) -> int:
    """Input + output + cache read + cache write (input excludes cache, as Anthropic's)."""
    return (
        counts.input_tokens
        + counts.output_tokens
        + counts.cache_read_tokens
        + counts.cache_write_tokens
    )


def truncate(text: str, limit: int = MAX_TEXT) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut."""
    if len(text) <= limit:
        return text
    marker = "…[truncated]"
    return text[: limit - len(marker)] + marker


def _count_field() -> Any:
    return attrs.field(default=0, metadata=checked(COUNT))


def _task_id_field() -> Any:
    return attrs.field(metadata=checked(TASK_ID))


def _session_field() -> Any:
    return attrs.field(default=SESSION_TOPIC, metadata=checked(SESSION))


@attrs.frozen(kw_only=True)
class Event:
    """Base of all events; ``event_name`` is the wire name."""

    event_name: ClassVar[str] = ""
    task_id: str

    def __attrs_post_init__(self) -> None:
        """Replaced in each event class by the check of its fields (``install_checks``)."""


@install_checks
@attrs.frozen(kw_only=True)
class TaskQueued(Event):
    event_name: ClassVar[str] = "task_queued"
    task_id: str = _task_id_field()
    name: str = attrs.field(default="", metadata=checked(bounded_text(MAX_TEXT)))
    attempt: int = attrs.field(default=1, metadata=checked(POSITIVE))
    priority: int = attrs.field(default=0, metadata=checked(INT))


@install_checks
@attrs.frozen(kw_only=True)
class TaskStarted(Event):
    event_name: ClassVar[str] = "task_started"
    task_id: str = _task_id_field()
    name: str = attrs.field(default="", metadata=checked(bounded_text(MAX_TEXT)))
    attempt: int = attrs.field(default=1, metadata=checked(POSITIVE))


@install_checks
@attrs.frozen(kw_only=True)
class TaskUsage(Event):
    """Tokens (and maybe cost) a task recorded; counts are increments.

    ``records`` is how many usage records the event sums: a stdout reader
    coalesces the records of one read (same model, provider and cost source)
    into one event whose tokens and cost are their sums.
    """

    event_name: ClassVar[str] = "task_usage"
    task_id: str = _task_id_field()
    model: str = attrs.field(default="", metadata=checked(bounded_text(MAX_NAME)))
    provider: str | None = attrs.field(
        default=None, metadata=checked(optional(bounded_text(MAX_NAME)))
    )
    input_tokens: int = _count_field()
    output_tokens: int = _count_field()
    cache_read_tokens: int = _count_field()
    cache_write_tokens: int = _count_field()
    cost_usd: float | None = attrs.field(default=None, metadata=checked(optional(MONEY)))
    cost_source: CostSource = attrs.field(
        default="unpriced", metadata=checked(one_of(COST_SOURCES, "COST_SOURCES"))
    )
    records: int = attrs.field(default=1, metadata=checked(POSITIVE))
    #: Which output format the usage was read from (``USAGE_FORMATS``, e.g.
    #: ``"claude-code"``); "" when a task recorded it through the API.  Text, not
    #: a choice, so a frame naming a format this version does not know decodes.
    source: str = attrs.field(default="", metadata=checked(bounded_text(MAX_NAME)))

    @property
    def total_tokens(self) -> int:
        return total_tokens(self)


@install_checks
@attrs.frozen(kw_only=True)
class TaskOutput(Event):
    """Consecutive lines of one output stream of a task: ``lines`` of them in ``line``.

    ``line`` holds them joined with ``"\\n"`` (a subprocess's lines of one read go
    out as one event), at most ``MAX_OUTPUT_TEXT`` characters; each line is cut to
    ``MAX_OUTPUT_LINE``.  ``truncated``: at least one of them was cut.  A frame
    without ``lines`` is one line.
    """

    event_name: ClassVar[str] = "task_output"
    task_id: str = _task_id_field()
    stream: OutputStream = attrs.field(
        default="stdout", metadata=checked(one_of(OUTPUT_STREAMS, "OUTPUT_STREAMS"))
    )
    line: str = attrs.field(metadata=checked(bounded_text(MAX_OUTPUT_TEXT)))
    truncated: bool = attrs.field(default=False, metadata=checked(BOOL))
    lines: int = attrs.field(default=1, metadata=checked(LINE_COUNT))


@install_checks
@attrs.frozen(kw_only=True)
class TaskCompleted(Event):
    event_name: ClassVar[str] = "task_completed"
    task_id: str = _task_id_field()
    attempt: int = attrs.field(default=1, metadata=checked(POSITIVE))
    duration_seconds: float = attrs.field(default=0.0, metadata=checked(SECONDS))
    exit_code: int | None = attrs.field(default=None, metadata=checked(optional(INT)))


@install_checks
@attrs.frozen(kw_only=True)
class TaskFailed(Event):
    event_name: ClassVar[str] = "task_failed"
    task_id: str = _task_id_field()
    attempt: int = attrs.field(default=1, metadata=checked(POSITIVE))
    error: str = attrs.field(default="", metadata=checked(bounded_text(MAX_TEXT)))
    duration_seconds: float = attrs.field(default=0.0, metadata=checked(SECONDS))
    exit_code: int | None = attrs.field(default=None, metadata=checked(optional(INT)))
    timed_out: bool = attrs.field(default=False, metadata=checked(BOOL))


@install_checks
@attrs.frozen(kw_only=True)
class TaskCancelled(Event):
    event_name: ClassVar[str] = "task_cancelled"
    task_id: str = _task_id_field()
    reason: str = attrs.field(default="", metadata=checked(bounded_text(MAX_TEXT)))
    was_running: bool = attrs.field(default=False, metadata=checked(BOOL))


@install_checks
@attrs.frozen(kw_only=True)
class TaskRetrying(Event):
    event_name: ClassVar[str] = "task_retrying"
    task_id: str = _task_id_field()
    attempt: int = attrs.field(default=1, metadata=checked(POSITIVE))
    delay_seconds: float = attrs.field(default=0.0, metadata=checked(SECONDS))
    error: str = attrs.field(default="", metadata=checked(bounded_text(MAX_TEXT)))


@install_checks
@attrs.frozen(kw_only=True)
class ExecutorPaused(Event):
    event_name: ClassVar[str] = "executor_paused"
    task_id: str = _session_field()
    by: Actor = attrs.field(default="operator", metadata=checked(one_of(ACTORS, "ACTORS")))
    reason: str = attrs.field(default="", metadata=checked(bounded_text(MAX_TEXT)))


@install_checks
@attrs.frozen(kw_only=True)
class ExecutorResumed(Event):
    event_name: ClassVar[str] = "executor_resumed"
    task_id: str = _session_field()
    by: Actor = attrs.field(default="operator", metadata=checked(one_of(ACTORS, "ACTORS")))
    reason: str = attrs.field(default="", metadata=checked(bounded_text(MAX_TEXT)))


@install_checks
@attrs.frozen(kw_only=True)
class BudgetChanged(Event):
    event_name: ClassVar[str] = "budget_changed"
    task_id: str = _session_field()
    budget_usd: float | None = attrs.field(default=None, metadata=checked(optional(MONEY)))
    by: Actor = attrs.field(default="operator", metadata=checked(one_of(ACTORS, "ACTORS")))
    reason: str = attrs.field(default="", metadata=checked(bounded_text(MAX_TEXT)))


@install_checks
@attrs.frozen(kw_only=True)
class ConcurrencyChanged(Event):
    """How many tasks may run at once changed (an operator's ``set_concurrency``)."""

    event_name: ClassVar[str] = "concurrency_changed"
    task_id: str = _session_field()
    concurrency: int = attrs.field(default=1, metadata=checked(POSITIVE))
    previous: int = attrs.field(default=1, metadata=checked(POSITIVE))
    by: Actor = attrs.field(default="operator", metadata=checked(one_of(ACTORS, "ACTORS")))
    reason: str = attrs.field(default="", metadata=checked(bounded_text(MAX_TEXT)))


@install_checks
@attrs.frozen(kw_only=True)
class BudgetWarning(Event):
    event_name: ClassVar[str] = "budget_warning"
    task_id: str = _session_field()
    budget_usd: float = attrs.field(metadata=checked(MONEY))
    spent_usd: float = attrs.field(metadata=checked(MONEY))
    threshold: float = attrs.field(default=0.8, metadata=checked(FRACTION))


@install_checks
@attrs.frozen(kw_only=True)
class BudgetExhausted(Event):
    event_name: ClassVar[str] = "budget_exhausted"
    task_id: str = _session_field()
    budget_usd: float = attrs.field(metadata=checked(MONEY))
    spent_usd: float = attrs.field(metadata=checked(MONEY))


@install_checks
@attrs.frozen(kw_only=True)
class SessionUpdate(Event):
    """The session aggregate; the first seven data fields are orc's, by name and type."""

    event_name: ClassVar[str] = "session_update"
    task_id: str = _session_field()
    duration_seconds: int = _count_field()
    total_tokens: int = _count_field()
    input_tokens: int = _count_field()
    output_tokens: int = _count_field()
    estimated_cost_usd: float = attrs.field(default=0.0, metadata=checked(MONEY))
    tasks_running: int = _count_field()
    is_paused: bool = attrs.field(default=False, metadata=checked(BOOL))
    session_id: str = attrs.field(default="", metadata=checked(bounded_text(256)))
    started_at: datetime | None = attrs.field(default=None, metadata=checked(AWARE_TIME))
    cache_read_tokens: int = _count_field()
    cache_write_tokens: int = _count_field()
    tasks_queued: int = _count_field()
    tasks_completed: int = _count_field()
    tasks_failed: int = _count_field()
    tasks_cancelled: int = _count_field()
    unpriced_tokens: int = _count_field()
    budget_usd: float | None = attrs.field(default=None, metadata=checked(optional(MONEY)))
    budget_remaining_usd: float | None = attrs.field(
        default=None, metadata=checked(optional(MONEY))
    )
    #: Who paused the executor and why (``executor_paused``'s ``by`` and ``reason``);
    #: None while it is not paused, and in frames from before these fields.
    paused_by: Actor | None = attrs.field(
        default=None, metadata=checked(optional(one_of(ACTORS, "ACTORS")))
    )
    pause_reason: str | None = attrs.field(
        default=None, metadata=checked(optional(bounded_text(MAX_TEXT)))
    )
    #: Tasks that may run at once, once an operator changed it (``concurrency_changed``);
    #: None before, and in frames from before this field.
    concurrency: int | None = attrs.field(default=None, metadata=checked(optional(POSITIVE)))
    #: True while the serve node of a cluster session cannot read its event stream
    #: (Redis unreachable) or has not caught up since: the numbers may be behind.
    #: Always False on a single process, and in frames from before this field.
    stale: bool = attrs.field(default=False, metadata=checked(BOOL))

    def __attrs_post_init__(self) -> None:
        expected = total_tokens(self)
        if self.total_tokens != expected:
            raise EventValidationError(
                f"total_tokens must equal input + output + cache read + cache write "
                f"({expected}), got {self.total_tokens}"
            )


EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_name: cls
    for cls in (
        TaskQueued,
        TaskStarted,
        TaskUsage,
        TaskOutput,
        TaskCompleted,
        TaskFailed,
        TaskCancelled,
        TaskRetrying,
        ExecutorPaused,
        ExecutorResumed,
        BudgetChanged,
        BudgetWarning,
        BudgetExhausted,
        SessionUpdate,
        ConcurrencyChanged,
    )
}

TASK_END_EVENTS: frozenset[str] = frozenset(("task_completed", "task_failed", "task_cancelled"))
