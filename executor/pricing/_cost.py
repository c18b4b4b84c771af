"""What tokens cost: pure functions and values, reusable outside the executor.

Precedence: a cost the provider reported wins (``"reported"``); else the
user's price table (``"user_table"``); else genai-prices (``"computed"``);
else the usage is ``"unpriced"`` and its cost is ``None`` — never an invented $0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal

import attrs
from genai_prices import Usage, calc_price

from events import CostSource

from ..usage import TokenCounts
from ._prices import PER_MILLION, ModelPrice, PriceTable


@attrs.frozen
class Cost:
    """What usage cost in USD (None: unpriced), and where the figure came from."""

    usd: float | None
    source: CostSource


@attrs.frozen
class _GenaiRates:
    """genai-prices' price for a model as per-million rates, valid below ``linear_below``.

    Within one price tier, price is linear in each token kind; ``calc_price``
    is slow (Decimal arithmetic, registry look-ups: bench/HISTORY.md, "Memoised
    per-model rates"), so usage below the model's first tier threshold is priced
    from these rates instead.
    """

    price: ModelPrice
    linear_below: int


_PROBE_TOKENS = 1000
#: Usage of one kind of token, for probing its rate: a 1-hour cache write is
#: a cache write too (``TokenCounts.cache_write_1h``), at its own rate.
#: In ``ModelPrice``'s field order.
_PROBES: tuple[Callable[[int], TokenCounts], ...] = (
    lambda n: TokenCounts(input=n),
    lambda n: TokenCounts(output=n),
    lambda n: TokenCounts(cache_read=n),
    lambda n: TokenCounts(cache_write=n),
    lambda n: TokenCounts(cache_write=n, cache_write_1h=n),
)


def _first_tier_start(model_price: object) -> int | None:
    starts = [
        tier.start
        for value in getattr(model_price, "__dict__", {}).values()
        for tier in getattr(value, "tiers", None) or ()
    ]
    return min(starts, default=None)


def _probe_rates(model: str, provider: str | None) -> _GenaiRates:
    """Per-token rates from small probes; raises LookupError for unknown models."""

    def price(tokens: TokenCounts) -> Decimal:
        return Decimal(
            calc_price(_genai_usage(tokens), model_ref=model, provider_id=provider).total_price
        )

    rates: list[float] = []
    linear = True
    for probe in _PROBES:
        one = price(probe(_PROBE_TOKENS))
        two = price(probe(2 * _PROBE_TOKENS))
        # A fixed per-call component would break linearity: then never use the rates.
        linear = linear and two == 2 * one
        rates.append(float(one * PER_MILLION / _PROBE_TOKENS))
    result = calc_price(_genai_usage(TokenCounts(input=1)), model_ref=model, provider_id=provider)
    model_price = getattr(result, "model_price", None)
    first_tier = None if model_price is None else _first_tier_start(model_price)
    if not linear or model_price is None:  # tiers unknown: always ask genai-prices
        below = 0
    elif first_tier is None:
        below = 1 << 62
    else:
        below = min(first_tier, 1 << 62)
    return _GenaiRates(ModelPrice(*rates), below)


def _genai_usage(tokens: TokenCounts) -> Usage:
    return Usage(
        # genai-prices counts cache tokens inside input_tokens, and the 1-hour
        # cache writes inside cache_write_tokens (priced at their own rate).
        input_tokens=tokens.input + tokens.cache_read + tokens.cache_write,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
        cache_write_1h_tokens=tokens.cache_write_1h or None,
    )


@attrs.define
class CostCalculator:
    """Prices usage records; remembers per (model, provider) what genai-prices knows."""

    prices: PriceTable | None = None
    _rates: dict[tuple[str, str | None], _GenaiRates | None] = attrs.field(factory=dict)

    def cost(
        self,
        model: str,
        provider: str | None,
        tokens: TokenCounts,
        reported_usd: float | None = None,
        *,
        parts: Sequence[TokenCounts] = (),
    ) -> Cost:
        """What ``tokens`` cost; with ``parts`` (records whose sum is ``tokens``),
        each part is priced on its own and the costs summed: price tiers apply
        per request, so pricing the sum could cross a tier no request reached."""
        if reported_usd is not None:
            return Cost(reported_usd, "reported")
        if len(parts) > 1:
            return self._cost_of_parts(model, provider, parts)
        if self.prices is not None:
            price = self.prices.lookup(model, provider)
            if price is not None:
                return Cost(price.cost(tokens), "user_table")
        computed = self._computed(model, provider, tokens)
        if computed is None:
            return Cost(None, "unpriced")
        return Cost(computed, "computed")

    def _cost_of_parts(
        self, model: str, provider: str | None, parts: Sequence[TokenCounts]
    ) -> Cost:
        # What ``cost`` does for each part, with the source looked up once:
        # one model and provider resolve to one source.
        if self.prices is not None:
            price = self.prices.lookup(model, provider)
            if price is not None:
                return Cost(math.fsum([price.cost(part) for part in parts]), "user_table")
        rates = self._rates_for(model, provider)
        if rates is None:
            return Cost(None, "unpriced")
        rate, below = rates.price, rates.linear_below
        costs = [
            rate.cost(part)
            if part.input + part.cache_read + part.cache_write < below
            else _genai_cost(model, provider, part)
            for part in parts
        ]
        return Cost(math.fsum(costs), "computed")

    def _rates_for(self, model: str, provider: str | None) -> _GenaiRates | None:
        """genai-prices' rates for the model, asked once; None if it is not known."""
        if not model:
            return None
        key = (model, provider)
        if key in self._rates:
            return self._rates[key]
        try:
            rates: _GenaiRates | None = _probe_rates(model, provider)
        except LookupError:
            rates = None
        self._rates[key] = rates
        return rates

    def _computed(self, model: str, provider: str | None, tokens: TokenCounts) -> float | None:
        rates = self._rates_for(model, provider)
        if rates is None:
            return None
        if tokens.input + tokens.cache_read + tokens.cache_write < rates.linear_below:
            return rates.price.cost(tokens)
        return _genai_cost(model, provider, tokens)


def _genai_cost(model: str, provider: str | None, tokens: TokenCounts) -> float:
    result = calc_price(_genai_usage(tokens), model_ref=model, provider_id=provider)
    return float(result.total_price)
