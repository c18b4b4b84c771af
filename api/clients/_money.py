"""USD amounts as the command line prints them: one formatter for every command."""

from __future__ import annotations

import math

CENTS = 2
# Below a dollar, costs are fractions of a cent: four places unless whole cents.
SMALL = 4
# Past this many places an amount is written in scientific notation instead.
MAX_PLACES = 12
SIGNIFICANT_DIGITS = 2


def format_usd(usd: object, *, places: int | None = None) -> str:
    """``$1,234.50``, ``$0.50``, ``$0.0123``, ``$0.0010``, ``$0.000012``.

    With ``places`` (a table column), at least that many decimals; without, whole
    cents and amounts from $1 up get two, others four. Either way a nonzero amount
    keeps two significant digits (``$0.001`` never reads ``$0.00``). ``None``
    reads ``none``, a value that is not a number ``?``.
    """
    if usd is None:
        return "none"
    if isinstance(usd, bool) or not isinstance(usd, int | float):
        return "?"
    if not math.isfinite(usd):
        return f"${usd}"
    wanted = _natural_places(usd) if places is None else places
    needed = _significant_places(usd)
    if needed > MAX_PLACES:
        return f"${usd:.{SIGNIFICANT_DIGITS - 1}e}"
    return f"${usd:,.{max(wanted, needed)}f}"


def _natural_places(usd: float) -> int:
    cents = usd * 100
    whole_cents = abs(cents - round(cents)) < 1e-9
    return CENTS if abs(usd) >= 1 or whole_cents else SMALL


def _significant_places(usd: float) -> int:
    """Decimals that show ``SIGNIFICANT_DIGITS`` digits of ``usd`` (0 from $1 up)."""
    size = abs(usd)
    if size == 0 or size >= 1:
        return 0
    return -math.floor(math.log10(size)) + SIGNIFICANT_DIGITS - 1
