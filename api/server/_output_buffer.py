"""The newest output lines of each task, kept in the server for ``/api/tasks/ID/output``.

A publisher listener: each ``task_output`` event is split into its lines, and each
line is numbered in its task's output (``number``, from 1), so a page can start
and end inside an event.  Two bounds hold whatever the tasks write: lines per task
(``lines_per_task``) and characters over all tasks (``max_chars``, the oldest
line of any task goes first).  Past ``max_tasks`` tasks the one written to (or
heard of) longest ago is forgotten, lines and all (heard of again, it starts a new
count).  What is cut is counted per task (``not_kept``) and in total.

Lines are kept as they came, an event's lines together (``_Chunk``), so keeping a
burst of output costs one object per event, not per line.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from datetime import datetime
from typing import Final

import attrs

from events import (
    END_STATES,
    Published,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskOutput,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
)

DEFAULT_LINES_PER_TASK: Final = 1000
DEFAULT_MAX_CHARS: Final = 16_000_000
DEFAULT_MAX_TASKS: Final = 10_000
#: The global order of chunks holds stale entries (chunks a task's own cap already
#: cut); past this many per kept line it is compacted, so it stays bounded too.
_STALE_FACTOR: Final = 2

_STATE_OF_EVENT: Final[dict[type, str]] = {
    TaskQueued: "queued",
    TaskStarted: "running",
    TaskRetrying: "retrying",
    TaskCompleted: "completed",
    TaskFailed: "failed",
    TaskCancelled: "cancelled",
}


@attrs.frozen
class OutputLine:
    """One line a task wrote, as kept."""

    number: int
    seq: int
    time: datetime
    stream: str
    text: str
    truncated: bool


@attrs.define(eq=False)
class _Chunk:
    """The lines of one ``task_output`` event; ``start`` of them already cut."""

    first: int
    seq: int
    time: datetime
    stream: str
    texts: list[str]
    truncated: bool
    start: int = 0

    @property
    def next_number(self) -> int:
        return self.first + len(self.texts)

    def lines(self) -> Iterator[OutputLine]:
        for index in range(self.start, len(self.texts)):
            yield OutputLine(
                self.first + index,
                self.seq,
                self.time,
                self.stream,
                self.texts[index],
                self.truncated,
            )


@attrs.define(eq=False)
class TaskOutputLines:
    """What is kept of one task's output, and how much was not."""

    task_id: str
    chunks: deque[_Chunk] = attrs.field(factory=deque)
    #: Lines kept now.
    kept: int = 0
    #: Lines seen: the ``number`` of the newest.
    seen: int = 0
    #: Lines cut to stay within the bounds (the oldest ones).
    not_kept: int = 0
    #: The task's latest state as its events said, None before any.
    state: str | None = None

    @property
    def first_kept(self) -> int:
        """The ``number`` of the oldest line kept (``seen + 1`` when none is)."""
        if not self.chunks:
            return self.seen + 1
        oldest = self.chunks[0]
        return oldest.first + oldest.start

    def page(
        self, *, since: int | None, before: int | None, limit: int, stream: str | None
    ) -> list[OutputLine]:
        """Up to ``limit`` kept lines: after line ``since`` (oldest first), else the
        newest before line ``before`` (or the newest of all), in order."""
        chunks = [c for c in self.chunks if stream is None or c.stream == stream]
        if since is not None:
            page: list[OutputLine] = []
            for chunk in chunks:
                if chunk.next_number <= since + 1:
                    continue
                for line in chunk.lines():
                    if line.number > since:
                        page.append(line)
                        if len(page) == limit:
                            return page
            return page
        newest: deque[OutputLine] = deque(maxlen=limit)
        taken = 0
        for chunk in reversed(chunks):
            if before is not None and chunk.first + chunk.start >= before:
                continue
            lines = [ln for ln in chunk.lines() if before is None or ln.number < before]
            newest.extendleft(reversed(lines[-(limit - taken) :]))
            taken = len(newest)
            if taken == limit:
                break
        return list(newest)


@attrs.define(eq=False)
class OutputBuffer:
    """Bounded per-task output, fed by :meth:`record` (a publisher listener)."""

    lines_per_task: int = DEFAULT_LINES_PER_TASK
    max_chars: int = DEFAULT_MAX_CHARS
    max_tasks: int = DEFAULT_MAX_TASKS
    #: Lines cut over all tasks, and tasks forgotten (past ``max_tasks``).
    not_kept_total: int = 0
    tasks_forgotten: int = 0
    chars: int = 0
    _tasks: dict[str, TaskOutputLines] = attrs.field(factory=dict, init=False)
    #: Every chunk kept, oldest first, with its task (and, for a while, chunks
    #: already cut by their task's own bound: see ``_compact``).
    _order: deque[tuple[TaskOutputLines, _Chunk]] = attrs.field(factory=deque, init=False)
    _kept: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        for name in ("lines_per_task", "max_chars", "max_tasks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")

    @property
    def kept_lines(self) -> int:
        return self._kept

    def get(self, task_id: str) -> TaskOutputLines | None:
        return self._tasks.get(task_id)

    def record(self, item: Published) -> None:
        """The listener: keep ``task_output`` lines and each task's state."""
        event = item.event
        kind = type(event)
        if kind is TaskOutput:
            assert isinstance(event, TaskOutput)
            self._add(item, event)
        elif kind in _STATE_OF_EVENT:
            entry = self._entry(event.task_id)
            if entry.state not in END_STATES or kind is not TaskCancelled:
                entry.state = _STATE_OF_EVENT[kind]

    def _entry(self, task_id: str) -> TaskOutputLines:
        entry = self._tasks.get(task_id)
        if entry is None:
            entry = self._tasks[task_id] = TaskOutputLines(task_id)
            if len(self._tasks) > self.max_tasks:
                self._forget_oldest_task()
        return entry

    def _add(self, item: Published, event: TaskOutput) -> None:
        entry = self._tasks.pop(event.task_id, None)
        if entry is None:
            entry = self._entry(event.task_id)
        else:
            # Written to: now the last to be forgotten.
            self._tasks[event.task_id] = entry
        texts = event.line.split("\n")
        chunk = _Chunk(entry.seen + 1, item.seq, item.time, event.stream, texts, event.truncated)
        entry.seen += len(texts)
        entry.chunks.append(chunk)
        entry.kept += len(texts)
        self._order.append((entry, chunk))
        self._kept += len(texts)
        self.chars += _cost(texts)
        if entry.kept > self.lines_per_task:
            self._cut(entry, entry.kept - self.lines_per_task)
        while self.chars > self.max_chars and self._order:
            owner, oldest = self._order.popleft()
            if owner.chunks and owner.chunks[0] is oldest:
                self._cut(owner, len(oldest.texts) - oldest.start)
        if len(self._order) > _STALE_FACTOR * self._kept + self.lines_per_task:
            self._compact()

    def _cut(self, entry: TaskOutputLines, count: int) -> None:
        """Cut the oldest ``count`` lines of ``entry``, counting them."""
        while count and entry.chunks:
            oldest = entry.chunks[0]
            n = min(count, len(oldest.texts) - oldest.start)
            self.chars -= _cost(oldest.texts[oldest.start : oldest.start + n])
            oldest.start += n
            if oldest.start == len(oldest.texts):
                entry.chunks.popleft()
            entry.kept -= n
            entry.not_kept += n
            self.not_kept_total += n
            self._kept -= n
            count -= n

    def _compact(self) -> None:
        """Drop the entries of chunks no longer kept, so the order stays bounded."""
        kept = [(owner, chunk) for owner, chunk in self._order if _holds(owner, chunk)]
        self._order = deque(kept)

    def _forget_oldest_task(self) -> None:
        """Forget the task written to (or heard of) longest ago, lines and counts:
        the bound on tasks."""
        entry = self._tasks.pop(next(iter(self._tasks)))
        self.tasks_forgotten += 1
        self._cut(entry, entry.kept)


def _holds(owner: TaskOutputLines, chunk: _Chunk) -> bool:
    return (
        bool(owner.chunks) and chunk.seq >= owner.chunks[0].seq and chunk.start < len(chunk.texts)
    )


def _cost(texts: list[str]) -> int:
    """Lines' share of ``max_chars``: their text, and one for each line itself, so
    empty lines are bounded too."""
    return sum(map(len, texts)) + len(texts)
