"""Session aggregate, ``session_update`` broadcasting and Prometheus metrics."""

from ._aggregate import TRIGGERS, SessionAggregate, Trigger
from ._broadcaster import SessionBroadcaster, serve_broadcaster
from ._exceptions import BroadcasterConfigError, BroadcasterError, RestoreError
from ._exposition import render_metrics
from ._metrics import RuncastMetrics
from ._totals import MAX_TOTAL_COST_USD, MAX_TOTAL_TOKENS, capped_cost, capped_tokens

__all__ = [
    "MAX_TOTAL_COST_USD",
    "MAX_TOTAL_TOKENS",
    "TRIGGERS",
    "BroadcasterConfigError",
    "BroadcasterError",
    "RestoreError",
    "RuncastMetrics",
    "SessionAggregate",
    "SessionBroadcaster",
    "Trigger",
    "capped_cost",
    "capped_tokens",
    "render_metrics",
    "serve_broadcaster",
]
