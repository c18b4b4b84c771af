"""What one usage line adds: the record the parser gives the stdout reader."""

from __future__ import annotations

import attrs

from ._tokens import TokenCounts


@attrs.frozen
class UsageRecord:
    """Usage read from one line; ``model=None`` means the task's model.

    ``replaces_provisional`` marks a provider's totals (Claude Code's
    ``result``): they replace the usage counted since the previous totals.
    ``per_model``: one of a result's per-model records, which together
    replace it model by model.
    """

    tokens: TokenCounts
    model: str | None = None
    provider: str | None = None
    cost_usd: float | None = None
    replaces_provisional: bool = False
    per_model: bool = False
    #: The format it was read in (``events.USAGE_FORMATS``).  Not compared: two
    #: records are equal when they count the same.
    source: str = attrs.field(default="", eq=False)
