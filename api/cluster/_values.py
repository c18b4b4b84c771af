"""The values ``ClusterLink`` takes and returns (all frozen)."""

from __future__ import annotations

import math
from typing import Any

import attrs

from executor import CommandSpec
from executor.pricing import check_budget

from ._exceptions import ClusterError

#: ``AppendResult.status`` values.
APPEND_OK = "ok"
APPEND_DUP = "dup"
APPEND_FENCED = "fenced"
#: ``ControlCommand.op`` values.
CONTROL_OPS = frozenset(("pause", "resume", "cancel", "budget", "retry"))
#: The ``op`` of ``ControlEntry``: the operators' ones plus ``tasks`` (new tasks: wake up).
CONTROL_ENTRY_OPS = frozenset((*CONTROL_OPS, "tasks"))
ON_BUDGET = frozenset(("pause", "suspend", "cancel"))
DEFAULT_EVENTS_MAXLEN = 100_000


def _check_cost(_request: object, _attribute: object, value: Any) -> None:
    if value is not None and (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ClusterError(f"cost_usd: expected a finite amount >= 0 or None, got {value!r}")


def _check_src_seq(_request: object, _attribute: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ClusterError(f"src_seq: expected an integer >= 1, got {value!r}")


@attrs.frozen
class QueuedTask:
    """A task to submit: its id, its spec and its ``task_queued`` event's wire JSON."""

    task_id: str
    spec: CommandSpec
    event_json: str


@attrs.frozen(kw_only=True)
class SubmitSettings:
    """The session's settings; only the first submit of a session sets them."""

    budget_usd: float | None = attrs.field(default=None, converter=check_budget)
    prices: str = ""
    start_paused: bool = False
    on_budget: str = attrs.field(default="pause", validator=attrs.validators.in_(ON_BUDGET))
    events_maxlen: int = attrs.field(
        default=DEFAULT_EVENTS_MAXLEN, validator=attrs.validators.ge(1)
    )
    #: Appended (in this order, before the tasks' ``task_queued``) when the session is new:
    #: e.g. ``BudgetChanged`` and ``ExecutorPaused(by=startup)`` as ``runcast run`` publishes.
    startup_events: tuple[str, ...] = ()


@attrs.frozen
class AppendRequest:
    """One event to append. ``src_seq``: the producer's own 1, 2, 3... (idempotency key).

    ``task_id`` ``"*"`` for session events (never fenced); ``token`` the lease token
    of the claim the event belongs to; ``cost_usd`` a ``task_usage`` event's cost.
    """

    src: str
    src_seq: int = attrs.field(validator=_check_src_seq)
    task_id: str
    token: str
    kind: str
    cost_usd: float | None = attrs.field(validator=_check_cost)
    event_json: str


@attrs.frozen
class AppendResult:
    """``status``: ok | dup (already appended) | fenced (the lease is not the sender's).

    ``crossed``: the budget thresholds this append crossed, in order (``"warning"``,
    ``"exhausted"``); ``paused``: this append paused the session (it was not paused);
    ``announce``: a crossing (this one or an earlier one, whose worker's reply was lost)
    is not announced yet, whatever the status: the producer should announce it.
    """

    status: str
    seq: int
    spent_usd: float
    crossed: tuple[str, ...] = ()
    budget_usd: float | None = None
    paused: bool = False
    announce: bool = False


@attrs.frozen
class Claim:
    """A task this worker now holds; ``reclaimed_from``: the instance that held it, or ""."""

    task_id: str
    entry_id: str
    token: str
    attempts: int
    reclaimed_from: str


@attrs.frozen
class StreamEvent:
    """One entry of the events stream: its id, the session seq, the event's wire JSON."""

    entry_id: str
    seq: int
    event_json: str


@attrs.frozen
class ControlEntry:
    """One command of the control stream, as every worker reads it."""

    entry_id: str
    op: str
    task_id: str
    by: str
    reason: str
    suspend: bool | None
    on_budget: str


@attrs.frozen(kw_only=True)
class ControlCommand:
    """An operator's (or the budget's) command; ``events``: the wire JSON to append with it."""

    op: str = attrs.field(validator=attrs.validators.in_(CONTROL_OPS))
    task_id: str = "*"
    by: str = "operator"
    reason: str = ""
    suspend: bool | None = None
    budget_usd: float | None = attrs.field(default=None, converter=check_budget)
    events: tuple[str, ...] = ()


@attrs.frozen
class ControlResult:
    """``ok``; else ``reason`` says why not. ``seq``: the last event appended (0: none).

    For ``budget``: ``crossed`` and ``paused`` as in ``AppendResult`` (the caller then
    appends the crossing events with a ``pause`` by ``budget``).
    """

    ok: bool
    reason: str = ""
    seq: int = 0
    crossed: tuple[str, ...] = ()
    spent_usd: float = 0.0
    budget_usd: float | None = None
    paused: bool = False


@attrs.frozen
class ClusterState:
    """The ``state`` hash parsed, the ``seq`` counter and the live workers."""

    paused: bool
    paused_by: str
    pause_reason: str
    budget_usd: float | None
    spent_usd: float
    on_budget: str
    prices: str
    last_seq: int
    workers_live: int
    #: Whether a submit created the session (the ``state`` hash exists).
    exists: bool = True
    events_maxlen: int = DEFAULT_EVENTS_MAXLEN
    #: Tasks queued or held by a worker (not ended): 0 with nothing left to run.
    open_tasks: int = 0
    #: The 80 % line / the budget was crossed and its event is not in the stream yet.
    warning_unannounced: bool = False
    exhaustion_unannounced: bool = False
    #: The spend when the 80 % line / the budget was crossed (0.0: not crossed).
    warned_usd: float = 0.0
    exhausted_usd: float = 0.0

    @property
    def announce_pending(self) -> bool:
        """A budget crossing still waits for its announcement."""
        return self.warning_unannounced or self.exhaustion_unannounced
