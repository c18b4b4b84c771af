"""What ``runcast run`` and ``runcast demo`` do (defined, light, in ``_main``)."""

from __future__ import annotations

import argparse

import trio

from ._demo import DemoOptions, run_demo
from ._main import server_config
from ._run import RunOptions, run_job


def run_command(args: argparse.Namespace) -> int:
    options = RunOptions(
        job_file=args.job_file,
        server=server_config(args),
        concurrency=args.concurrency,
        budget_usd=args.budget_usd,
        prices=args.prices,
        interval=args.interval,
        store=args.store,
        fresh=args.fresh,
        start_paused=args.start_paused,
        keep_serving=args.keep_serving,
        on_budget=args.on_budget,
    )
    return trio.run(run_job, options)


def demo_command(args: argparse.Namespace) -> int:
    options = DemoOptions(
        server=server_config(args),
        interval=args.interval,
        concurrency=args.concurrency,
        budget_usd=args.budget_usd,
        seed=args.seed,
        speed=args.speed,
    )
    return trio.run(run_demo, options)
