"""Agent CLIs whose usage is a running total: Codex ``exec --json``, Gemini CLI.

Sources and ground truth: tests/data/usage/README.md ("Field semantics").

* Codex ``exec --json``: ``turn.completed.usage`` ``{input_tokens,
  cached_input_tokens, output_tokens}`` is the *thread's* running total
  (``usage_from_last_total`` in ``codex-rs/exec``); ``input_tokens`` includes
  the cached ones, ``output_tokens`` the reasoning ones.  No model, no cost.
* Gemini CLI ``--output-format json``: one object at the end of stdout whose
  ``stats.models[model].tokens`` sums every API response of the process
  (``uiTelemetry.ts``): ``prompt`` (includes ``cached``), ``candidates``,
  ``thoughts``, ``tool`` (the API's ``toolUsePromptTokenCount``, outside
  ``prompt``).  Billable input = prompt - cached + tool, output = candidates
  + thoughts, cache read = cached.  ``total`` is not used: it is the API's
  ``totalTokenCount`` summed and may hold tokens in no bucket.
* Gemini CLI ``--output-format stream-json``: the final ``result`` event's
  ``stats`` (``convertToStreamStats``): ``input_tokens`` (includes
  ``cached``), ``output_tokens`` (candidates only), ``total_tokens``, and
  since v0.34 ``models[model]`` with the same keys.  Thoughts and tool tokens
  are known only as ``total_tokens - input_tokens - output_tokens``: that
  remainder is counted as output (thoughts are billed as output).

Each running total is turned into increments by ``RunningTotals``: a later
total replaces an earlier one (only the growth is counted); a total below
the previous one starts anew.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._tokens import TokenCounts
from ._values import NotUsage, read_count, read_text


@attrs.define
class RunningTotals:
    """The latest running total per key (a model, or "" for the task's)."""

    _totals: dict[str, TokenCounts] = attrs.field(factory=dict)

    def since(self, key: str, now: TokenCounts) -> TokenCounts:
        """What ``now`` adds to the previous total of ``key``; all of it if it starts anew."""
        before = self._totals.get(key)
        self._totals[key] = now
        if before is None or not now.covers(before):
            return now
        return now.minus_clamped(before)


def codex_tokens(usage: Mapping[str, Any]) -> TokenCounts:
    """``turn.completed.usage`` as disjoint counts."""
    total_input = read_count(usage, "input_tokens")
    cached = min(total_input, read_count(usage, "cached_input_tokens"))
    return TokenCounts(
        input=total_input - cached, output=read_count(usage, "output_tokens"), cache_read=cached
    )


def gemini_json_tokens(stats: Mapping[str, Any]) -> dict[str, TokenCounts]:
    """``stats.models[model].tokens`` of a ``--output-format json`` object, by model."""
    models = stats.get("models")
    if not isinstance(models, dict) or not models:
        raise NotUsage("stats.models")
    found: dict[str, TokenCounts] = {}
    for model, entry in models.items():
        tokens = entry.get("tokens") if isinstance(entry, dict) else None
        name = read_text(model)
        if name is None or not isinstance(tokens, dict) or "prompt" not in tokens:
            raise NotUsage(f"stats.models.{model}.tokens")
        prompt = read_count(tokens, "prompt")
        cached = min(prompt, read_count(tokens, "cached"))
        found[name] = TokenCounts(
            input=prompt - cached + read_count(tokens, "tool"),
            output=read_count(tokens, "candidates") + read_count(tokens, "thoughts"),
            cache_read=cached,
        )
    return found


def _gemini_stream_counts(stats: Mapping[str, Any]) -> TokenCounts:
    total_input = read_count(stats, "input_tokens")
    output = read_count(stats, "output_tokens")
    cached = min(total_input, read_count(stats, "cached"))
    rest = max(0, read_count(stats, "total_tokens") - total_input - output)
    return TokenCounts(input=total_input - cached, output=output + rest, cache_read=cached)


def gemini_stream_tokens(stats: Mapping[str, Any]) -> dict[str, TokenCounts]:
    """A ``stream-json`` ``result`` event's ``stats``, by model ("": not named)."""
    if "input_tokens" not in stats and "total_tokens" not in stats:
        raise NotUsage("stats")
    models = stats.get("models")
    if isinstance(models, dict) and models:
        found: dict[str, TokenCounts] = {}
        for model, entry in models.items():
            name = read_text(model)
            if name is None or not isinstance(entry, dict):
                raise NotUsage(f"stats.models.{model}")
            found[name] = _gemini_stream_counts(entry)
        return found
    return {"": _gemini_stream_counts(stats)}
