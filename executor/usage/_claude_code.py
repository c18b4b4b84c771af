"""Claude Code's ``result`` lines: one process's running totals, turned into increments.

Per Claude Code's source and its maintainer (tests/data/usage/README.md,
"Field semantics"): ``total_cost_usd`` and ``modelUsage`` are running totals
over the process (every API call of every turn: main loop, subagents, side
calls), while ``usage`` is the current turn's main loop only.  So:

* a result with a well-formed, non-empty ``modelUsage`` gives one record per
  model: what its running total grew by since the previous result;
* without it (absent, ``{}`` as on an ``error_during_execution`` result, or an
  entry missing one of the four token counts), the turn's ``usage`` is the
  record, and ``total_cost_usd``'s growth since the previous result its cost;
* a running total that falls below the previous one (after ``/clear``, or a
  trailing error result of ``$0``) starts a new one: counts never go down.

Each record replaces the usage the assistant lines counted since the previous
result (``UsageRecord.replaces_provisional``); ``per_model`` records of one
result replace it model by model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._record import UsageRecord
from ._tokens import NO_TOKENS, TokenCounts
from ._values import anthropic_tokens, read_cost, read_count, read_text

#: A ``modelUsage`` entry's counts, in ``TokenCounts`` order; all four must be there.
MODEL_USAGE_KEYS = (
    "inputTokens",
    "outputTokens",
    "cacheReadInputTokens",
    "cacheCreationInputTokens",
)

ModelTotals = dict[str, tuple[TokenCounts, float]]


def read_model_usage(value: object) -> ModelTotals | None:
    """``modelUsage`` as ``{model: (tokens, costUSD)}``; None if absent, empty or not
    the documented shape (every entry with the four counts and ``costUSD``)."""
    if not isinstance(value, dict) or not value:
        return None
    totals: ModelTotals = {}
    for model, entry in value.items():
        name = read_text(model)
        if name is None or not isinstance(entry, dict):
            return None
        if any(key not in entry for key in MODEL_USAGE_KEYS) or "costUSD" not in entry:
            return None
        counts = [read_count(entry, key) for key in MODEL_USAGE_KEYS]
        cost = read_cost(entry["costUSD"], f"modelUsage.{name}.costUSD")
        totals[name] = (TokenCounts(*counts), cost or 0.0)
    return totals


@attrs.define
class ClaudeCodeTotals:
    """The running totals of one Claude Code process, as of its previous ``result``."""

    _cost: float | None = None
    _models: ModelTotals = attrs.field(factory=dict)

    def result(self, message: Mapping[str, Any], last_model: str | None) -> list[UsageRecord]:
        """The records a ``result`` line stands for (see the module's docstring)."""
        turn = anthropic_tokens(message["usage"])
        cost = read_cost(message.get("total_cost_usd"), "total_cost_usd")
        by_model = read_model_usage(message.get("modelUsage"))
        if by_model is not None:
            return self._by_model(by_model, cost)
        model = last_model
        model_usage = message.get("modelUsage")
        if model is None and isinstance(model_usage, dict) and len(model_usage) == 1:
            model = read_text(next(iter(model_usage)))
        record = UsageRecord(
            turn,
            model=model,
            cost_usd=self._cost_since(cost),
            replaces_provisional=True,
            source="claude-code",
        )
        return [record]

    def _cost_since(self, cost: float | None) -> float | None:
        """What the running total grew by; all of it if it starts anew."""
        if cost is None:
            return None
        before = self._cost
        self._cost = cost
        if before is None or cost < before:
            self._models = {}
            return cost
        return cost - before

    def _by_model(self, by_model: ModelTotals, cost: float | None) -> list[UsageRecord]:
        before = self._models
        running = cost if cost is not None else sum(usd for _, usd in by_model.values())
        restarted = (self._cost is not None and running < self._cost) or any(
            model not in by_model or not by_model[model][0].covers(tokens)
            for model, (tokens, _) in before.items()
        )
        if restarted:
            before = {}
        records = []
        for model, (tokens, usd) in by_model.items():
            earlier_tokens, earlier_usd = before.get(model, (NO_TOKENS, 0.0))
            records.append(
                UsageRecord(
                    tokens.minus_clamped(earlier_tokens),
                    model=model,
                    cost_usd=max(0.0, usd - earlier_usd),
                    replaces_provisional=True,
                    per_model=True,
                    source="claude-code",
                )
            )
        self._models = by_model
        self._cost = running
        return records
