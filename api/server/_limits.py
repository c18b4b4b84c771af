"""How many plain HTTP requests are answered at once, and the requests refused.

Each request is answered on the one event loop the executor also runs on, so
readers in numbers must not queue work without bound: past ``capacity``
requests in flight the next one gets 503 with ``Retry-After`` at once.
Refusals (this one, and the access checks' 401, 403 and 421) are counted and
served as ``runcast_http_requests_refused_total{status}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Final

import attrs
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric

from ._exceptions import HttpError

log = structlog.get_logger("runcast.api")

#: Seconds a refused client is told to wait; requests are answered in milliseconds.
RETRY_AFTER_SECONDS: Final = 1
#: The statuses counted: access refusals and overload.
REFUSAL_STATUSES: Final = (401, 403, 421, 503)


@attrs.define(eq=False)
class HttpRefusals:
    """Requests refused, by HTTP status."""

    by_status: dict[int, int] = attrs.field(factory=lambda: dict.fromkeys(REFUSAL_STATUSES, 0))

    def count(self, status: int) -> None:
        if status in self.by_status:
            self.by_status[status] += 1


@attrs.define(eq=False)
class RequestLimit:
    """At most ``capacity`` requests in flight; :meth:`slot` refuses the next with 503."""

    capacity: int
    refusals: HttpRefusals = attrs.field(factory=HttpRefusals)
    in_flight: int = 0

    @contextlib.contextmanager
    def slot(self, path: str, peer: str) -> Iterator[None]:
        """Hold one of the ``capacity`` places while answering ``path`` to ``peer``."""
        if self.in_flight >= self.capacity:
            self.refusals.count(503)
            reason = f"too many requests at once (the limit is {self.capacity})"
            log.warning("request refused", peer=peer, path=path, status=503, reason=reason)
            raise HttpError(
                503,
                f"{reason}; retry in {RETRY_AFTER_SECONDS}s",
                headers=(("Retry-After", str(RETRY_AFTER_SECONDS)),),
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1


@attrs.define(eq=False)
class _RefusalCollector:
    refusals: HttpRefusals

    def describe(self) -> Iterable[Metric]:
        return [self._family(with_samples=False)]

    def collect(self) -> Iterable[Metric]:
        return [self._family(with_samples=True)]

    def _family(self, *, with_samples: bool) -> Metric:
        family = CounterMetricFamily(
            "runcast_http_requests_refused",
            "HTTP requests and WebSocket handshakes refused: 401/403 by the token and "
            "Origin checks, 421 by the Host check, 503 over the concurrent request limit.",
            labels=["status"],
        )
        if with_samples:
            for status, count in sorted(self.refusals.by_status.items()):
                family.add_metric([str(status)], count)
        return family


def register_refusals(registry: CollectorRegistry, refusals: HttpRefusals) -> Callable[[], None]:
    """Serve ``refusals`` from ``registry``; returns the function that unregisters them."""
    collector = _RefusalCollector(refusals)
    registry.register(collector)
    return lambda: registry.unregister(collector)
