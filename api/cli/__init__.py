"""The ``runcast`` command line: ``run``, ``demo``, resume, summaries, other commands."""

from ._demo import DemoOptions, run_demo
from ._heap import settle_heap
from ._main import build_parser, main
from ._resume import SessionPlan, job_key, plan_session
from ._run import RunOptions, run_job
from ._signals import StopSignals, watch_stop_signals

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
