"""Session aggregate, ``session_update`` broadcasting and Prometheus metrics."""

from ._aggregate import TASK_STATES, TRIGGERS, SessionAggregate, TaskState, Trigger
from ._broadcaster import SessionBroadcaster, serve_broadcaster
from ._exceptions import BroadcasterConfigError, BroadcasterError, RestoreError
from ._metrics import RuncastMetrics, render_metrics

__all__ = [
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
    "render_metrics",
    "serve_broadcaster",
]
