"""Price tables: the user's USD per million tokens of each kind, by model.

A table is TOML, ``[models.NAME]`` with ``input``, ``output`` and optionally
``cache_read`` and ``cache_write`` (which default to the input price) and
``cache_write_1h`` (Anthropic's 1-hour cache writes; default ``cache_write``); a name
``"provider/model"`` wins over the bare model name.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..usage import TokenCounts
from ._exceptions import PriceTableError

PER_MILLION = 1_000_000


@attrs.frozen
class ModelPrice:
    """USD per million tokens of each kind.

    ``cache_write_1h``: the price of a write to Anthropic's 1-hour cache
    (``TokenCounts.cache_write_1h``); None: the same as any cache write.
    """

    input: float
    output: float
    cache_read: float
    cache_write: float
    cache_write_1h: float | None = None

    def cost(self, tokens: TokenCounts) -> float:
        one_hour = tokens.cache_write_1h
        extra = 0.0
        if one_hour and self.cache_write_1h is not None:
            extra = one_hour * (self.cache_write_1h - self.cache_write)
        return (
            tokens.input * self.input
            + tokens.output * self.output
            + tokens.cache_read * self.cache_read
            + tokens.cache_write * self.cache_write
            + extra
        ) / PER_MILLION


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


_PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")


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
            cache_write_1h=values.get("cache_write_1h"),
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
