"""``runcast logs TASK_ID --store PATH``: a task's output from the store's event history."""

from __future__ import annotations

import argparse
import sys
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..clients import EXIT_OK, LogLine, printable
from ..store import SessionStore, StoreError
from ..store._output import check_task, output_pruned, session_of_task, task_output

EXIT_ERROR = 1
Emit = Callable[[LogLine], None]


def print_from_store(args: argparse.Namespace, emit: Emit, note: Callable[[str], None]) -> int:
    """Print the task's lines from ``args.store``; its errors become a line on stderr."""
    try:
        store = SessionStore.open(args.store) if Path(args.store).exists() else None
        if store is None:
            raise StoreError(f"no store at {args.store}")
        try:
            _print_stored(store, args, emit, note)
        finally:
            store.close()
    except StoreError as exc:
        print(f"runcast logs: {printable(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _print_stored(
    store: SessionStore, args: argparse.Namespace, emit: Emit, note: Callable[[str], None]
) -> None:
    if args.session is None:
        session_id = session_of_task(store, args.task_id)
    else:
        session_id = store.resolve(args.session)
        check_task(store, session_id, args.task_id)
    lines: Iterable[Any] = (
        line
        for line in task_output(store, session_id, args.task_id)
        if args.stream is None or line.stream == args.stream
    )
    if args.tail is not None:
        lines = deque(lines, maxlen=args.tail)
    if output_pruned(store, session_id, args.task_id):
        note(
            "the store's history no longer holds this task's first events "
            "(it keeps a session's newest ones): earlier lines may be missing"
        )
    for line in lines:
        emit(LogLine(line.time, line.stream, line.text, line.truncated))
