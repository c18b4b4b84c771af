"""``runcast run JOBFILE``: run a job file while serving the dashboard and the API."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO, cast

import attrs
import structlog
import trio

from executor import (
    Executor,
    JobFile,
    OnBudget,
    PriceTable,
    TaskInfo,
    TaskState,
    load_job_file,
    load_price_table,
)

from .._stack import Stack, StackSettings, open_stack
from ..server import ListenError, RuncastServer, ServerConfig
from ..store import SessionStore, StoredTask, discard_unserved, release_lease
from ._exits import consists_of
from ._resume import SessionPlan, job_key, plan_session
from ._retry_failed import select_retries
from ._signals import StopSignals, watch_stop_signals
from ._store_commands import DEFAULT_STORE
from ._summary import format_summary

log = structlog.get_logger("runcast.api")

DEFAULT_CONCURRENCY = 4

EXIT_OK = 0
#: Job-file tasks submitted per turn of the event loop.
SUBMIT_CHUNK = 64
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
    #: The SQLite store file; ":memory:" keeps nothing after the run.
    store: str = DEFAULT_STORE
    #: Start a new session even if the store holds an unfinished run of this job.
    fresh: bool = False
    start_paused: bool = False
    keep_serving: bool = False
    #: What an exhausted budget does to running tasks (``executor.ON_BUDGET``).
    on_budget: OnBudget | None = None
    #: Run again the tasks of the job's newest session that did not complete (``_retry_failed``).
    retry_failed: bool = False
    #: With ``retry_failed``: only these tasks.
    only: frozenset[str] | None = None
    #: With ``retry_failed``: run tasks whose command changed since, with the new command.
    accept_changes: bool = False


def resolve_settings(
    options: RunOptions, job: JobFile, plan: SessionPlan | None = None
) -> StackSettings:
    """Flags override what a resumed session stored, which overrides the job file's
    top-level keys; all of them override the defaults."""
    prices: PriceTable | None = job.prices
    if options.prices is not None:
        prices = load_price_table(options.prices)
    concurrency = options.concurrency or job.concurrency or DEFAULT_CONCURRENCY
    budget = job.budget_usd if plan is None else plan.budget_usd
    if options.budget_usd is not None:
        budget = options.budget_usd
    resumed = plan is not None and plan.resumed
    return StackSettings(
        server=options.server,
        concurrency=concurrency,
        budget_usd=budget,
        prices=prices,
        start_paused=options.start_paused or (plan is not None and plan.is_paused),
        on_budget=options.on_budget or job.on_budget or "pause",
        interval=options.interval,
        session_id=None if plan is None else plan.session_id,
        previous=plan.previous if resumed and plan is not None else None,
        last_seq=0 if plan is None else plan.last_seq,
        spent_usd=0.0 if plan is None else plan.spent_usd,
    )


def announce(server: RuncastServer, out: TextIO) -> None:
    hint = " (add ?token=<token>)" if server.config.requires_token else ""
    print(f"runcast: dashboard at {server.url}{hint}", file=out, flush=True)
    print(f"runcast: WebSocket at {server.websocket_url}", file=out, flush=True)


async def _until_done_or_signal(
    executor: Executor, stop: StopSignals, *, keep_serving: bool
) -> str | None:
    """Wait for every task to end (and then forever with ``keep_serving``), or a signal.

    The signal's name if it came while tasks were still running; None if they
    all ended first (a signal then only stops the serving, as ``keep_serving``
    expects).
    """
    received: str | None = None
    all_ended = False
    async with trio.open_nursery() as nursery:

        async def on_signal() -> None:
            nonlocal received
            signal_name = await stop.wait()
            if not all_ended:
                received = signal_name
            nursery.cancel_scope.cancel()

        async def on_done() -> None:
            nonlocal all_ended
            await executor.join()
            all_ended = True
            if keep_serving:
                log.info("all tasks ended; still serving until interrupted")
                await trio.sleep_forever()
            nursery.cancel_scope.cancel()

        nursery.start_soon(on_signal)
        nursery.start_soon(on_done)
    return received


async def _run_stack(
    settings: StackSettings,
    plan: SessionPlan,
    store: SessionStore,
    options: RunOptions,
    stop: StopSignals,
    out: TextIO,
    opened: list[Stack],
) -> bool:
    async with open_stack(settings, store=store, lease=plan.lease) as stack:
        opened.append(stack)  # for the summary, even if a second signal cuts this short
        announce(stack.server, out)
        if plan.resumed:
            print(
                f"runcast: resuming session {plan.session_id}: {len(plan.kept_outcomes)} "
                f"task(s) already ended are not run again, {len(plan.to_run)} to run",
                file=out,
                flush=True,
            )
        if (previous := plan.lease.taken_over) is not None:
            print(
                f"runcast: took session {plan.session_id} over from {previous.owner}: "
                f"{plan.lease.stale_because}",
                file=out,
                flush=True,
            )
        for index, (spec, attempts_used) in enumerate(plan.to_run):
            if stack.recorder is not None and stack.recorder.backpressure:
                # Each submission is recorded; a huge job file waits for the store.
                await stack.recorder.wait_caught_up()
            stack.executor.submit_command(spec, attempts_used=attempts_used)
            if index % SUBMIT_CHUNK == SUBMIT_CHUNK - 1:
                # A submission publishes (and may start a task): let the rest of
                # the loop run between chunks of a large job file.
                await trio.lowlevel.checkpoint()
        interrupted = await _until_done_or_signal(
            stack.executor, stop, keep_serving=options.keep_serving
        )
        if interrupted is not None:
            # New clients are refused at once; connected ones watch the tasks end,
            # get the final update, then a 1001 close as the stack shuts down.
            stack.server.stop_accepting()
            log.warning("interrupted: cancelling tasks", signal=interrupted)
            stack.executor.cancel_all(reason=f"interrupted by {interrupted}")
        return interrupted is not None


def summary_tasks(executor: Executor, store: SessionStore, session_id: str) -> list[TaskInfo]:
    """Every task this run submitted, for the summary table.

    The executor lists them all unless it let go of older finished ones
    (``keep_finished``); then those rows come from the store, which the
    recorder has flushed by the time the stack is closed.
    """
    if executor.finished_evicted == 0:
        return executor.tasks()
    kept = {info.task_id: info for info in executor.tasks()}
    return [
        kept.get(row.task_id) or _stored_info(store, session_id, row)
        for row in store.tasks(session_id)
        if executor.has_task(row.task_id)
    ]


def _stored_info(store: SessionStore, session_id: str, row: StoredTask) -> TaskInfo:
    usage = store.usage_totals(session_id, row.task_id)
    return TaskInfo(
        task_id=row.task_id,
        name=row.name,
        state=cast(TaskState, row.state),
        attempts=row.attempts,
        started_at=_stored_time(row.started_at),
        ended_at=_stored_time(row.ended_at),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        estimated_cost_usd=usage.cost_usd,
        error=row.error,
        exit_code=row.exit_code,
        unpriced_tokens=usage.unpriced_tokens,
    )


def _stored_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


async def run_job(options: RunOptions, *, out: TextIO = sys.stdout) -> int:
    """Run the job file to the end; the exit code (0 only if every task completed).

    A bad job file or price table raises before anything runs or binds; so does
    a session another live process runs (``SessionLeasedError``, nothing written).
    """
    job = load_job_file(options.job_file)
    resolve_settings(options, job)  # a bad price table fails before the store is touched
    store = SessionStore.open(options.store)
    try:
        retry = None
        if options.retry_failed:
            retry = select_retries(
                store,
                job,
                job_key(job),
                only=options.only,
                accept_changes=options.accept_changes,
            )
            if retry.changed:
                log.warning(
                    "retrying tasks whose command changed",
                    session_id=retry.session_id,
                    tasks=list(retry.changed),
                )
        plan = plan_session(store, job, fresh=options.fresh, retry=retry)
        settings = resolve_settings(options, job, plan)
        log.info(
            "running job file",
            path=str(options.job_file),
            tasks=len(job.tasks),
            concurrency=settings.concurrency,
            budget_usd=settings.budget_usd,
            on_budget=settings.on_budget,
            store=options.store,
            session_id=plan.session_id,
            resumed=plan.resumed,
        )
        opened: list[Stack] = []
        cut_short = True  # unless the run says otherwise (a second signal cuts it first)
        try:
            async with watch_stop_signals() as stop:
                cut_short = await _run_stack(settings, plan, store, options, stop, out, opened)
        except (ListenError, BaseExceptionGroup) as exc:
            if not opened and consists_of(exc, ListenError):
                # Nothing ran: the store is left as it was before this run.
                discard_unserved(store, plan.lease, resumed=plan.resumed)
            raise
        # A run whose tasks a signal cut short stays resumable; the next run continues
        # it. With --keep-serving, a signal after every task ended is the normal stop.
        status = "interrupted" if stop.received is not None and cut_short else "finished"
        store.end_session(plan.session_id, status=status)
        release_lease(store, plan.lease)
        if not opened:  # a second signal cut the start-up short
            return SIGNAL_EXIT.get(stop.received or "", EXIT_TASKS_DID_NOT_ALL_COMPLETE)
        stack = opened[0]
        tasks = summary_tasks(stack.executor, store, plan.session_id)
    finally:
        store.close()
    summary = format_summary(
        tasks, stack.broadcaster.snapshot(), interrupted=plan.interrupted, terminal=out.isatty()
    )
    print(summary, file=out, flush=True)
    earlier = list(plan.kept_outcomes.values())
    if all(task.state == "completed" for task in tasks) and all(
        state == "completed" for state in earlier
    ):
        return EXIT_OK  # with --keep-serving, a signal is the normal way to stop
    if stop.received is not None:
        return SIGNAL_EXIT.get(stop.received, EXIT_TASKS_DID_NOT_ALL_COMPLETE)
    return EXIT_TASKS_DID_NOT_ALL_COMPLETE
