"""The ``runcast`` command line: ``run``, ``demo``, resume, summaries, other commands."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._demo import (
        DemoOptions,
        run_demo,
    )
    from ._heap import (
        settle_heap,
    )
    from ._main import (
        build_parser,
        main,
    )
    from ._resume import (
        SessionPlan,
        job_key,
        plan_session,
    )
    from ._run import (
        RunOptions,
        run_job,
    )
    from ._signals import (
        StopSignals,
        watch_stop_signals,
    )

#: Where each public name lives. Imported on first use, so that the console script
#: loads only what the command it runs needs (`_main` builds the parser from light modules).
_WHERE: dict[str, str] = {
    "DemoOptions": "._demo",
    "run_demo": "._demo",
    "settle_heap": "._heap",
    "build_parser": "._main",
    "main": "._main",
    "SessionPlan": "._resume",
    "job_key": "._resume",
    "plan_session": "._resume",
    "RunOptions": "._run",
    "run_job": "._run",
    "StopSignals": "._signals",
    "watch_stop_signals": "._signals",
}

__all__ = [
    "DemoOptions",
    "RunOptions",
    "SessionPlan",
    "StopSignals",
    "build_parser",
    "job_key",
    "main",
    "plan_session",
    "run_demo",
    "run_job",
    "settle_heap",
    "watch_stop_signals",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (PEP 562)."""
    try:
        where = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
