"""What-ifs for usage ingestion, measured by patching the executor for one run.

1. The cost stage: genai-prices rates memoised per model.

``calc_price`` costs ~0.2-0.3 ms a call (Decimal arithmetic, unit registry
look-ups), which alone caps usage ingestion near 4,000 records/s.  Within one
price tier a model's price is linear in each token kind, so four probes give
per-token rates that price any usage below the model's first tier threshold
with four multiplications; usage at or above it still goes to ``calc_price``.

The benchmark measures the gain by patching ``executor._cost.calc_price`` with
:class:`MemoisedPrices` for one run; the change belongs in
``executor/_cost.py`` (``CostCalculator._computed``), which the benchmark does
not own.

2. The stdout reader: ``executor._lines.pump_lines`` handles every line of a
64 KiB read in one task step; :func:`yielding_reader` checkpoints every
``READER_SLICE_SECONDS`` instead (the change belongs in ``executor/_lines.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import attrs
import trio
from genai_prices import Usage, calc_price

import executor._command as command_module
import executor._cost as cost_module
from executor._lines import READ_CHUNK, LineHandler, LineSplitter

_INFINITE = 1 << 62


@attrs.frozen
class _Rates:
    input: float
    output: float
    cache_read: float
    cache_write: float
    first_tier: int


@attrs.frozen
class _Price:
    """Quacks like genai-prices' result where runcast reads it (``total_price``)."""

    total_price: float


def _first_tier(model_price: Any) -> int:
    starts = [
        tier.start
        for value in vars(model_price).values()
        for tier in getattr(value, "tiers", None) or ()
    ]
    return min(starts, default=_INFINITE)


@attrs.define
class MemoisedPrices:
    """Drop-in for ``calc_price(usage, model_ref=..., provider_id=...)``."""

    real: Callable[..., Any] = calc_price
    _rates: dict[tuple[str, str | None], _Rates] = attrs.field(factory=dict)
    memo_hits: int = 0
    fallbacks: int = 0

    def __call__(self, usage: Usage, *, model_ref: str, provider_id: str | None = None) -> Any:
        key = (model_ref, provider_id)
        rates = self._rates.get(key)
        if rates is None:
            rates = self._probe(model_ref, provider_id)  # LookupError propagates, as before
            self._rates[key] = rates
        total_input = int(usage.input_tokens or 0)
        if total_input >= rates.first_tier:
            self.fallbacks += 1
            return self.real(usage, model_ref=model_ref, provider_id=provider_id)
        self.memo_hits += 1
        cache_read = int(usage.cache_read_tokens or 0)
        cache_write = int(usage.cache_write_tokens or 0)
        uncached = total_input - cache_read - cache_write
        return _Price(
            uncached * rates.input
            + int(usage.output_tokens or 0) * rates.output
            + cache_read * rates.cache_read
            + cache_write * rates.cache_write
        )

    def _probe(self, model: str, provider: str | None) -> _Rates:
        def price(**counts: int) -> Decimal:
            result = self.real(Usage(**counts), model_ref=model, provider_id=provider)
            return Decimal(result.total_price)

        probe = self.real(Usage(input_tokens=1), model_ref=model, provider_id=provider)
        return _Rates(
            input=float(price(input_tokens=1)),
            output=float(price(output_tokens=1)),
            cache_read=float(price(input_tokens=1, cache_read_tokens=1)),
            cache_write=float(price(input_tokens=1, cache_write_tokens=1)),
            first_tier=_first_tier(probe.model_price),
        )


@contextmanager
def memoised_prices() -> Iterator[MemoisedPrices]:
    """Patch the executor's ``calc_price`` for the duration of the block."""
    memo = MemoisedPrices()
    namespace = vars(cost_module)  # the name the executor calls, patched in place
    original = namespace["calc_price"]
    namespace["calc_price"] = memo
    try:
        yield memo
    finally:
        namespace["calc_price"] = original


#: The yielding reader's time slice: well under the 10 ms blockage target.
READER_SLICE_SECONDS = 0.002


async def _yielding_pump_lines(
    stream: trio.abc.ReceiveStream, handle: LineHandler, splitter: LineSplitter
) -> None:
    """``executor._lines.pump_lines``, but it lets other tasks run every few ms.

    The original handles all lines of a 64 KiB read in one task step; with
    usage records costing ~0.1-0.3 ms each that step lasts tens of ms.
    """
    while True:
        data = await stream.receive_some(READ_CHUNK)
        if not data:
            break
        slice_end = time.perf_counter() + READER_SLICE_SECONDS
        for line, truncated in splitter.feed(data):
            handle(line, truncated)
            if time.perf_counter() >= slice_end:
                await trio.lowlevel.checkpoint()
                slice_end = time.perf_counter() + READER_SLICE_SECONDS
    for line, truncated in splitter.finish():
        handle(line, truncated)


@contextmanager
def yielding_reader() -> Iterator[None]:
    """Patch the command runner's line pump for the duration of the block."""
    namespace = vars(command_module)
    original = namespace["pump_lines"]
    namespace["pump_lines"] = _yielding_pump_lines
    try:
        yield
    finally:
        namespace["pump_lines"] = original
