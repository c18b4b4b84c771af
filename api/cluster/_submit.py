"""``runcast submit``: a job file's tasks into a session, checked as ``runcast run`` checks them.

The job file is loaded by ``executor.load_job_file`` (the same errors as ``run``:
file, line, task and field); ``--prices`` by ``load_price_table``. Flags override
the job file's top-level keys, as for ``run``. The submit script is idempotent by
task id, so submitting the same file again adds nothing; the session's settings
(budget, prices, on_budget, start paused) are set by its first submit only.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import attrs

from events import BudgetChanged, Event, EventCodec, ExecutorPaused, TaskQueued, truncate
from executor import JobFile, OnBudget, PriceTableError, load_job_file, load_price_table

from ._link import ClusterLink
from ._values import DEFAULT_EVENTS_MAXLEN, QueuedTask, SubmitSettings


@attrs.frozen(kw_only=True)
class SubmitOptions:
    """``runcast submit``'s flags; None: the job file's value, else the default."""

    job_file: Path
    budget_usd: float | None = None
    prices: Path | None = None
    start_paused: bool = False
    on_budget: OnBudget | None = None
    #: About how many events the session's Redis stream keeps (``MAXLEN ~``).
    events_maxlen: int = DEFAULT_EVENTS_MAXLEN


@attrs.frozen
class Submission:
    """What a submit would enqueue: the job's tasks and the session's settings."""

    job: JobFile
    tasks: tuple[QueuedTask, ...]
    settings: SubmitSettings


def _prices_text(options: SubmitOptions, job: JobFile) -> str:
    """The price table's TOML text (workers parse it), checked first as ``run`` checks it."""
    if options.prices is not None:
        path = options.prices
        load_price_table(path)  # a bad table fails here, as for ``run``
    elif job.prices is not None:
        path = Path(job.prices.source)  # load_job_file loaded it from this path
    else:
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceTableError(f"{path}: cannot read price table: {exc}") from exc


def _wire(codec: EventCodec, now: datetime, event: Event) -> str:
    return codec.encode(0, now, event)


def queued_tasks(job: JobFile, codec: EventCodec, now: datetime) -> tuple[QueuedTask, ...]:
    """Each task with its ``task_queued`` (attempt 1), as ``runcast run`` queues it."""
    tasks = []
    for spec in job.tasks:
        assert spec.id is not None  # load_job_file names every task
        event = TaskQueued(
            task_id=spec.id, name=truncate(spec.display_name), attempt=1, priority=spec.priority
        )
        tasks.append(QueuedTask(spec.id, spec, _wire(codec, now, event)))
    return tuple(tasks)


def startup_events(
    codec: EventCodec, now: datetime, budget_usd: float | None, start_paused: bool
) -> tuple[str, ...]:
    """What ``runcast run``'s executor publishes as it opens: the budget, the pause."""
    events: list[Event] = []
    if budget_usd is not None:
        events.append(BudgetChanged(budget_usd=budget_usd, by="startup"))
    if start_paused:
        events.append(ExecutorPaused(by="startup", reason="started paused"))
    return tuple(_wire(codec, now, event) for event in events)


def prepare_submission(options: SubmitOptions) -> Submission:
    """Load and check everything; raises the errors ``runcast run`` raises, nothing sent."""
    job = load_job_file(options.job_file)
    prices = _prices_text(options, job)
    budget = options.budget_usd if options.budget_usd is not None else job.budget_usd
    codec = EventCodec()
    now = datetime.now(UTC)
    settings = SubmitSettings(
        budget_usd=budget,
        prices=prices,
        start_paused=options.start_paused,
        on_budget=options.on_budget or job.on_budget or "pause",
        events_maxlen=options.events_maxlen,
        startup_events=startup_events(codec, now, budget, options.start_paused),
    )
    return Submission(job, queued_tasks(job, codec, now), settings)


def submitter_instance() -> str:
    return f"submit:{secrets.token_hex(4)}"


async def submit_tasks(link: ClusterLink, submission: Submission) -> int:
    """Enqueue the submission's new tasks; returns how many were new."""
    tasks: Sequence[QueuedTask] = submission.tasks
    return await link.submit(submitter_instance(), tasks, settings=submission.settings)
