"""What ``runcast run`` and ``runcast demo`` do (defined, light, in ``_main``)."""

from __future__ import annotations

import argparse

import trio

from ._demo import DemoOptions, run_demo
from ._main import server_config
from ._retry_failed import RetryFailedError
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
        retry_failed=args.retry_failed,
        only=args.only,
        accept_changes=args.accept_changes,
    )
    if (args.only is not None or args.accept_changes) and not args.retry_failed:
        raise RetryFailedError("--only and --accept-changes go with --retry-failed")
    if args.retry_failed and args.fresh:
        raise RetryFailedError(
            "--retry-failed reopens the newest session; --fresh starts a new one"
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
