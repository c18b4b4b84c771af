"""Session aggregate, ``session_update`` broadcasting and Prometheus metrics."""

from ._aggregate import TASK_STATES, TRIGGERS, SessionAggregate, TaskState, Trigger
from ._broadcaster import SessionBroadcaster, serve_broadcaster
from ._exceptions import BroadcasterConfigError, BroadcasterError, RestoreError
from ._metrics import RuncastMetrics, render_metrics
from ._totals import MAX_TOTAL_COST_USD, MAX_TOTAL_TOKENS, capped_cost, capped_tokens

__all__ = [
    "MAX_TOTAL_COST_USD",
    "MAX_TOTAL_TOKENS",
    "TASK_STATES",
    "TRIGGERS",
    "BroadcasterConfigError",
    "BroadcasterError",
    "RestoreError",
    "RuncastMetrics",
    "SessionAggregate",
    "SessionBroadcaster",
    "TaskState",
    "Trigger",
    "capped_cost",
    "capped_tokens",
    "render_metrics",
    "serve_broadcaster",
]
