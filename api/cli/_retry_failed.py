"""``runcast run JOBFILE --retry-failed``: which tasks of the job's newest session run again.

Every task that did not complete (failed, timed out, cancelled, or cut short)
runs again as its next attempt in the same session; completed tasks keep their
result. ``--only`` picks some of them. A task whose command (its argv or shell
line, ``shell``, ``cwd`` and ``env``) changed since the session ran it is not
run as if it were the same: the retry is refused naming it, unless
``--accept-changes``. Sessions recorded before the store kept command hashes
(schema v6) have none to compare: their tasks count as unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection

import attrs

from executor import CommandSpec, JobFile

from .._exceptions import ApiError
from ..store import SessionStore, command_hashes, newest_session


class RetryFailedError(ApiError):
    """``--retry-failed`` cannot go ahead: nothing to retry, a bad ``--only``, a changed command."""


@attrs.frozen
class RetrySelection:
    """The session to reopen and the tasks to run again in it."""

    session_id: str
    task_ids: frozenset[str]
    #: Retried tasks whose command changed (run anyway: ``--accept-changes``).
    changed: tuple[str, ...] = ()


def command_hash(spec: CommandSpec) -> str:
    """What identifies a task's command: a change to any of it is a different command."""
    command = spec.command if isinstance(spec.command, str) else list(spec.command)
    text = json.dumps(
        [command, spec.shell, spec.cwd, sorted(spec.env.items())], separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


def job_command_hashes(job: JobFile) -> dict[str, str]:
    return {str(spec.id): command_hash(spec) for spec in job.tasks}


def _names(ids: Collection[str]) -> str:
    return ", ".join(repr(task_id) for task_id in sorted(ids))


def select_retries(
    store: SessionStore,
    job: JobFile,
    job_key: str,
    *,
    only: frozenset[str] | None = None,
    accept_changes: bool = False,
) -> RetrySelection:
    """The tasks ``--retry-failed`` runs again; ``RetryFailedError`` saying why not."""
    session_id = newest_session(store, job_key)
    states = {task.task_id: task.state for task in store.tasks(session_id)}
    job_ids = [str(spec.id) for spec in job.tasks]
    if only is not None:
        unknown = only - set(job_ids)
        if unknown:
            raise RetryFailedError(f"--only: no task {_names(unknown)} in {job.path}")
        completed = {task_id for task_id in only if states.get(task_id) == "completed"}
        if completed:
            raise RetryFailedError(
                f"--only: task {_names(completed)} completed in session {session_id}; "
                "only failed, timed-out or cancelled tasks are retried"
            )
    picked = frozenset(
        task_id
        for task_id in job_ids
        if states.get(task_id) != "completed" and (only is None or task_id in only)
    )
    if not picked:
        raise RetryFailedError(f"session {session_id}: every task completed; nothing to retry")
    recorded = command_hashes(store, session_id)
    now = job_command_hashes(job)
    changed = tuple(
        sorted(task_id for task_id in picked if recorded.get(task_id, now[task_id]) != now[task_id])
    )
    if changed and not accept_changes:
        raise RetryFailedError(
            f"the command of task {_names(changed)} changed since session {session_id} ran it; "
            "--accept-changes runs the new command as the next attempt"
        )
    return RetrySelection(session_id, picked, changed)
