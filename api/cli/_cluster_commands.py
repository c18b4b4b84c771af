"""``runcast worker`` and ``runcast submit`` (defined, light, in ``_main``): cluster mode.

Imported only when one of them runs: it loads redis (``api.cluster``). A bad
URL, session name, job file or a password Redis refuses is a ``RuncastError``:
``_main`` prints it on one line and exits 2 (the password never shows).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from typing import TextIO

import attrs
import structlog
import trio

from ..cluster import (
    ClusterLink,
    RedisTarget,
    SessionKeys,
    SubmitOptions,
    Worker,
    open_link,
    parse_redis_url,
    prepare_submission,
    serve_worker,
    submit_tasks,
)
from ._signals import STOP_SIGNALS

log = structlog.get_logger("runcast.api")

EXIT_OK = 0


def _target(args: argparse.Namespace) -> tuple[RedisTarget, SessionKeys]:
    return parse_redis_url(args.redis, os.environ), SessionKeys(args.session)


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@attrs.define(eq=False)
class _Signals:
    """SIGINT/SIGTERM for a worker: the first stops it gracefully, the second aborts it,
    a third leaves at once."""

    received: str | None = None
    count: int = 0

    async def obey(self, worker: Worker, cancel_scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async for signum in signals:
                self.count += 1
                self.received = self.received or signal.Signals(signum).name
                if self.count == 1:
                    log.warning(
                        "stopping gracefully: running tasks finish; send it again to stop at once",
                        signal=self.received,
                    )
                    worker.stop()
                elif self.count == 2:
                    worker.abort()
                else:
                    cancel_scope.cancel()

    @property
    def exit_code(self) -> int:
        """0 after a graceful stop; 128+N once running tasks were cut short."""
        if self.count < 2 or self.received is None:
            return EXIT_OK
        return 128 + signal.Signals[self.received].value


async def run_worker(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    target, keys = _target(args)
    name = args.name or default_worker_name()
    signals = _Signals()
    async with open_link(target, keys, client_name=f"runcast-worker:{name}") as link:
        print(f"runcast: worker {name} on session {keys.name} at {target}", file=out, flush=True)
        async with trio.open_nursery() as nursery:
            worker: Worker = await nursery.start(
                _serve_and_leave, link, name, args, nursery.cancel_scope
            )
            nursery.start_soon(signals.obey, worker, nursery.cancel_scope)
    return signals.exit_code


async def _serve_and_leave(
    link: ClusterLink,
    name: str,
    args: argparse.Namespace,
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_worker(
        link,
        name=name,
        concurrency=args.concurrency,
        lease_seconds=args.lease,
        exit_when_idle=args.exit_when_idle,
        task_status=task_status,
    )
    scope.cancel()  # the signal watcher too


def worker_command(args: argparse.Namespace) -> int:
    return trio.run(run_worker, args)


async def run_submit(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    options = SubmitOptions(
        job_file=args.job_file,
        budget_usd=args.budget_usd,
        prices=args.prices,
        start_paused=args.start_paused,
        on_budget=args.on_budget,
        events_maxlen=args.events_maxlen,
    )
    submission = prepare_submission(options)  # a bad job file fails before Redis is asked
    target, keys = _target(args)
    async with open_link(target, keys, client_name="runcast-submit") as link:
        added = await submit_tasks(link, submission)
    total = len(submission.tasks)
    print(
        f"runcast: {added} of {total} task(s) submitted to session {keys.name} "
        f"({total - added} already there)",
        file=out,
        flush=True,
    )
    return EXIT_OK


def submit_command(args: argparse.Namespace) -> int:
    return trio.run(run_submit, args)
