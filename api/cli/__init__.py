"""The ``runcast`` command line: ``run``, ``demo``, resume, summaries, other commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy_names import import_on_first_use

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

__getattr__, __dir__ = import_on_first_use(__name__, _WHERE)
