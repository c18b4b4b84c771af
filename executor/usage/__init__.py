"""Usage: token counts, and the usage records a task's stdout lines carry.

``TokenCounts`` is the value the rest of the executor (pricing, task records,
the stdout reader) counts in; ``UsageParser`` reads the recognised JSON shapes
(runcast's own, Claude Code, Anthropic and OpenAI responses) from single lines.
Nothing here knows about tasks or the executor.
"""

from ._parser import MAX_TRACKED_IDS, UsageParser, typed_turn
from ._record import UsageRecord
from ._tokens import NO_TOKENS, TokenCounts, sum_tokens

__all__ = [
    "MAX_TRACKED_IDS",
    "NO_TOKENS",
    "TokenCounts",
    "UsageParser",
    "UsageRecord",
    "sum_tokens",
    "typed_turn",
]
