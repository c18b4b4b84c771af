"""``runcast run JOBFILE``: run a job file while serving the dashboard and the API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import attrs
import structlog
import trio

from executor import Executor, JobFile, PriceTable, load_job_file, load_price_table

from ._config import ServerConfig
from ._server import RuncastServer
from ._stack import Stack, StackSettings, StopSignals, open_stack, watch_stop_signals
from ._summary import format_summary

log = structlog.get_logger("runcast.api")

DEFAULT_CONCURRENCY = 4
EXIT_OK = 0
EXIT_TASKS_DID_NOT_ALL_COMPLETE = 1
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


@attrs.frozen(kw_only=True)
class RunOptions:
    """``runcast run``'s flags; ``None`` means "the job file's value, else the default"."""

    job_file: Path
    server: ServerConfig
    concurrency: int | None = None
    budget_usd: float | None = None
    prices: Path | None = None
    interval: float = 10.0
    #: Where the durable store lives (":memory:" for none); carried for the store.
    store: str | None = None
    start_paused: bool = False
    keep_serving: bool = False


def resolve_settings(options: RunOptions, job: JobFile) -> StackSettings:
    """Flags override the job file's top-level keys; both override the defaults."""
    prices: PriceTable | None = job.prices
    if options.prices is not None:
        prices = load_price_table(options.prices)
    concurrency = options.concurrency or job.concurrency or DEFAULT_CONCURRENCY
    budget = options.budget_usd if options.budget_usd is not None else job.budget_usd
    return StackSettings(
        server=options.server,
        concurrency=concurrency,
        budget_usd=budget,
        prices=prices,
        start_paused=options.start_paused,
        interval=options.interval,
    )


def announce(server: RuncastServer, out: TextIO) -> None:
    hint = " (add ?token=<token>)" if server.config.requires_token else ""
    print(f"runcast: dashboard at {server.url}{hint}", file=out, flush=True)
    print(f"runcast: WebSocket at {server.websocket_url}", file=out, flush=True)


async def _until_done_or_signal(
    executor: Executor, stop: StopSignals, *, keep_serving: bool
) -> str | None:
    """Wait for every task to end (and then forever with ``keep_serving``), or a signal."""
    received: str | None = None
    async with trio.open_nursery() as nursery:

        async def on_signal() -> None:
            nonlocal received
            received = await stop.wait()
            nursery.cancel_scope.cancel()

        async def on_done() -> None:
            await executor.join()
            if keep_serving:
                log.info("all tasks ended; still serving until interrupted")
                await trio.sleep_forever()
            nursery.cancel_scope.cancel()

        nursery.start_soon(on_signal)
        nursery.start_soon(on_done)
    return received


async def _run_stack(
    settings: StackSettings,
    job: JobFile,
    options: RunOptions,
    stop: StopSignals,
    out: TextIO,
    opened: list[Stack],
) -> None:
    async with open_stack(settings) as stack:
        opened.append(stack)  # for the summary, even if a second signal cuts this short
        announce(stack.server, out)
        for spec in job.tasks:
            stack.executor.submit_command(spec)
        interrupted = await _until_done_or_signal(
            stack.executor, stop, keep_serving=options.keep_serving
        )
        if interrupted is not None:
            # New clients are refused at once; connected ones watch the tasks end,
            # get the final update, then a 1001 close as the stack shuts down.
            stack.server.stop_accepting()
            log.warning("interrupted: cancelling tasks", signal=interrupted)
            stack.executor.cancel_all(reason=f"interrupted by {interrupted}")


async def run_job(options: RunOptions, *, out: TextIO = sys.stdout) -> int:
    """Run the job file to the end; the exit code (0 only if every task completed).

    A bad job file or price table raises before anything runs or binds.
    """
    job = load_job_file(options.job_file)
    settings = resolve_settings(options, job)
    log.info(
        "running job file",
        path=str(options.job_file),
        tasks=len(job.tasks),
        concurrency=settings.concurrency,
        budget_usd=settings.budget_usd,
        store=options.store,
    )
    opened: list[Stack] = []
    async with watch_stop_signals() as stop:
        await _run_stack(settings, job, options, stop, out, opened)
    if not opened:  # a second signal cut the start-up short
        return SIGNAL_EXIT.get(stop.received or "", EXIT_TASKS_DID_NOT_ALL_COMPLETE)
    stack = opened[0]
    tasks = stack.executor.tasks()
    print(format_summary(tasks, stack.broadcaster.snapshot()), file=out, flush=True)
    if all(task.state == "completed" for task in tasks):
        return EXIT_OK  # with --keep-serving, a signal is the normal way to stop
    if stop.received is not None:
        return SIGNAL_EXIT.get(stop.received, EXIT_TASKS_DID_NOT_ALL_COMPLETE)
    return EXIT_TASKS_DID_NOT_ALL_COMPLETE
