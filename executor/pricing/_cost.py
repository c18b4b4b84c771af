"""What tokens cost: pure functions and values, reusable outside the executor.

Precedence: a cost the provider reported wins (``"reported"``); else the
user's price table (``"user_table"``); else genai-prices (``"computed"``);
else the usage is ``"unpriced"`` and its cost is ``None`` — never an invented $0.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from genai_prices import Usage, calc_price

from events import CostSource

from ._exceptions import PriceTableError

_PER_MILLION = 1_000_000


@attrs.frozen
class TokenCounts:
    """Token counts; ``input`` excludes cache tokens (Anthropic's convention)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
        )

    def minus_clamped(self, other: TokenCounts) -> TokenCounts:
        """``self - other`` per kind, never below zero (counts only ever grow)."""
        return TokenCounts(
            max(0, self.input - other.input),
            max(0, self.output - other.output),
            max(0, self.cache_read - other.cache_read),
            max(0, self.cache_write - other.cache_write),
        )


def sum_tokens(parts: Iterable[TokenCounts]) -> TokenCounts:
    """The per-kind sums of ``parts``."""
    total = [0, 0, 0, 0]
    for part in parts:
        total[0] += part.input
        total[1] += part.output
        total[2] += part.cache_read
        total[3] += part.cache_write
    return TokenCounts(*total)


@attrs.frozen
class ModelPrice:
    """USD per million tokens of each kind."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(self, tokens: TokenCounts) -> float:
        return (
            tokens.input * self.input
            + tokens.output * self.output
            + tokens.cache_read * self.cache_read
            + tokens.cache_write * self.cache_write
        ) / _PER_MILLION


@attrs.frozen
class PriceTable:
    """User prices by model name (optionally ``"provider/model"``, which wins)."""

    models: Mapping[str, ModelPrice] = attrs.field(factory=dict)
    source: str = ""

    def lookup(self, model: str, provider: str | None) -> ModelPrice | None:
        if provider is not None:
            specific = self.models.get(f"{provider}/{model}")
            if specific is not None:
                return specific
        return self.models.get(model)


@attrs.frozen
class Cost:
    usd: float | None
    source: CostSource


_PRICE_FIELDS = ("input", "output", "cache_read", "cache_write")


def _price_value(path: str, model: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PriceTableError(f"{path}: model {model!r}: {key}: expected a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise PriceTableError(f"{path}: model {model!r}: {key}: must be finite and >= 0")
    return float(value)


def parse_price_table(data: Mapping[str, Any], *, source: str = "<prices>") -> PriceTable:
    """Build a table from ``{"models": {name: {input, output, cache_read?, cache_write?}}}``.

    ``cache_read``/``cache_write`` default to the input price: conservative,
    never under-reporting what a session cost.
    """
    extra = set(data) - {"models"}
    if extra:
        raise PriceTableError(
            f"{source}: unknown top-level key(s) {sorted(extra)}; put prices under [models.NAME]"
        )
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise PriceTableError(f"{source}: models: expected a table of models")
    table: dict[str, ModelPrice] = {}
    for model, entry in models.items():
        if not isinstance(entry, dict):
            raise PriceTableError(f"{source}: model {model!r}: expected a table of prices")
        unknown = set(entry) - set(_PRICE_FIELDS)
        if unknown:
            raise PriceTableError(
                f"{source}: model {model!r}: unknown key(s) {sorted(unknown)}; "
                f"allowed: {list(_PRICE_FIELDS)}"
            )
        for required in ("input", "output"):
            if required not in entry:
                raise PriceTableError(f"{source}: model {model!r}: {required}: missing")
        values = {key: _price_value(source, model, key, entry[key]) for key in entry}
        table[model] = ModelPrice(
            input=values["input"],
            output=values["output"],
            cache_read=values.get("cache_read", values["input"]),
            cache_write=values.get("cache_write", values["input"]),
        )
    return PriceTable(table, source)


def load_price_table(path: str | Path) -> PriceTable:
    """Read a TOML price table; ``PriceTableError`` names the file, model and field."""
    name = str(path)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise PriceTableError(f"{name}: cannot read price table: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PriceTableError(f"{name}: not valid TOML: {exc}") from exc
    return parse_price_table(data, source=name)


@attrs.frozen
class _GenaiRates:
    """genai-prices' price for a model as per-million rates, valid below ``linear_below``.

    Within one price tier, price is linear in each token kind; ``calc_price``
    takes ~0.2 ms a call (Decimal arithmetic, registry look-ups), so usage below
    the model's first tier threshold is priced from these rates instead.
    """

    price: ModelPrice
    linear_below: int


_PROBE_TOKENS = 1000


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
    for kind in ("input", "output", "cache_read", "cache_write"):
        one = price(TokenCounts(**{kind: _PROBE_TOKENS}))
        two = price(TokenCounts(**{kind: 2 * _PROBE_TOKENS}))
        # A fixed per-call component would break linearity: then never use the rates.
        linear = linear and two == 2 * one
        rates.append(float(one * _PER_MILLION / _PROBE_TOKENS))
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
        # genai-prices counts cache tokens inside input_tokens.
        input_tokens=tokens.input + tokens.cache_read + tokens.cache_write,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
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
