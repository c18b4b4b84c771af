"""Which session a ``runcast run`` writes to, and what a resumed one carries on from.

A run of a job file continues the newest unfinished session of the same job
(same task ids) unless ``--fresh``: completed tasks are not run again, failed
ones and ones an operator cancelled keep their outcome, and the rest run, with
the attempts they already made counting against their retries.

An attempt that was running when the process died, or that a stop (SIGINT,
SIGTERM) cancelled, is *interrupted*: it is recorded in the store as such and
its task runs again as the next attempt. What the interrupted attempt spent was
real, so it stays in the session's totals, once; the store keeps it apart
(``SessionRecord.interrupted``), so the attempts that ran to their end account
for exactly what an uninterrupted run would have spent.

Planning claims the session for this process first (``_store_lease``): while
another live process runs it, planning raises ``SessionLeasedError`` before
anything is written; a session whose owner died is taken over.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping

import attrs

from events import SessionUpdate
from executor import CommandSpec, JobFile

from ..store import (
    Clock,
    LeaseOwner,
    SessionLease,
    SessionRecord,
    SessionStore,
    StoredTask,
    UsageTotals,
    claim_session,
    record_command_hashes,
)
from ._retry_failed import RetrySelection, job_command_hashes

# Cancellation reasons of a run that was stopped, not of an operator's decision.
_STOPPED_REASONS = ("interrupted by", "executor stopped")
KEPT_OUTCOMES = frozenset(("completed", "failed", "cancelled"))


def _task_id(spec: CommandSpec) -> str:
    # load_job_file gives every task an id (generated ones are stable per file).
    if spec.id is None:
        raise ValueError("job file task without an id")
    return spec.id


def job_key(job: JobFile) -> str:
    """Identifies "the same job": the set of its task ids."""
    ids = "\n".join(sorted(_task_id(spec) for spec in job.tasks))
    return hashlib.sha256(ids.encode()).hexdigest()


@attrs.frozen(kw_only=True)
class SessionPlan:
    """What to run in a session and what it starts from."""

    session_id: str
    resumed: bool
    #: This process's hold on the session, to renew while it runs and release after.
    lease: SessionLease
    to_run: tuple[tuple[CommandSpec, int], ...]  # (task, attempts already used)
    kept_outcomes: Mapping[str, str] = attrs.field(factory=dict)  # task id -> final state
    previous: SessionUpdate | None = None
    last_seq: int = 0
    spent_usd: float = 0.0
    is_paused: bool = False
    budget_usd: float | None = None
    #: What interrupted attempts of this session spent so far (part of ``previous``).
    interrupted: UsageTotals = attrs.field(factory=UsageTotals)


def _stopped(task: StoredTask) -> bool:
    return task.state == "cancelled" and (task.error or "").startswith(_STOPPED_REASONS)


def _keeps_outcome(task: StoredTask) -> bool:
    return task.state in KEPT_OUTCOMES and not _stopped(task)


def interrupted_attempt(task: StoredTask) -> int | None:
    """The attempt of ``task`` a crash or a stop cut short, if its last one was."""
    if task.state in ("running", "interrupted") and task.attempts > 0:
        return task.attempts  # the process died while it ran (or a resume said so)
    if _stopped(task):
        return task.cancelled_attempt  # None if it was queued or waiting to retry
    return None


def _split_tasks(
    store: SessionStore, session_id: str, job: JobFile, rerun: frozenset[str] = frozenset()
) -> tuple[dict[str, str], list[tuple[CommandSpec, int]]]:
    """Mark the attempts a stopped run cut short; the outcomes kept, and what runs again
    (``rerun``: tasks whose failure or cancellation ``--retry-failed`` does not keep).

    A task runs again with the attempts it already made (numbered on from them).
    """
    stored = {task.task_id: task for task in store.tasks(session_id)}
    cut_short = [(task.task_id, interrupted_attempt(task)) for task in stored.values()]
    store.mark_interrupted(
        session_id, [(task_id, attempt) for task_id, attempt in cut_short if attempt is not None]
    )
    kept: dict[str, str] = {}
    to_run: list[tuple[CommandSpec, int]] = []
    for spec in job.tasks:
        task = stored.get(_task_id(spec))
        if task is not None and _keeps_outcome(task) and task.task_id not in rerun:
            kept[task.task_id] = task.state
        else:
            to_run.append((spec, 0 if task is None else task.attempts))
    return kept, to_run


def _previous_update(session: SessionRecord, outcomes: list[str]) -> SessionUpdate:
    """The session as its last run left it, for the broadcaster to carry on from."""
    return session.carried_on(
        completed=outcomes.count("completed"),
        failed=outcomes.count("failed"),
        cancelled=outcomes.count("cancelled"),
    )


def plan_session(
    store: SessionStore,
    job: JobFile,
    *,
    fresh: bool = False,
    retry: RetrySelection | None = None,
    owner: LeaseOwner | None = None,
    clock: Clock = time.time,
) -> SessionPlan:
    """Begin a new session, or plan the continuation of the job's unfinished one
    (or, with ``retry``, of the session it names, finished or not), holding its
    lease (``owner``: this process unless given)."""
    claim = claim_session(
        store,
        job_key=job_key(job),
        job_path=job.path,
        fresh=fresh,
        reopen=None if retry is None else retry.session_id,
        owner=owner,
        clock=clock,
    )
    session_id = claim.session_id
    record_command_hashes(store, session_id, job_command_hashes(job))
    if not claim.resumed:
        return SessionPlan(
            session_id=session_id,
            resumed=False,
            lease=claim.lease,
            to_run=tuple((spec, 0) for spec in job.tasks),
            budget_usd=job.budget_usd,
        )
    kept, to_run = _split_tasks(
        store, session_id, job, frozenset() if retry is None else retry.task_ids
    )
    session = store.session(session_id)
    usage = session.usage
    budget = session.budget_usd
    return SessionPlan(
        session_id=session_id,
        resumed=True,
        lease=claim.lease,
        to_run=tuple(to_run),
        kept_outcomes=kept,
        previous=_previous_update(session, list(kept.values())),
        last_seq=store.last_seq(session_id),
        spent_usd=usage.cost_usd,
        is_paused=session.is_paused,
        budget_usd=budget,
        interrupted=session.interrupted,
    )
