"""What ``runcast sessions``, ``show`` and ``export`` do (defined in ``_store_commands``)."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any, TextIO

import attrs

from ..clients import csv_cell, draws_table, format_usd, json_text, printable
from ..store import (
    SessionRecord,
    SessionStore,
    StoredTask,
    StoreError,
    UsageTotals,
)
from ._summary import interrupted_line

EXIT_ERROR = 1
COST_PLACES = 4


def _open_existing(path: str) -> SessionStore:
    if not Path(path).exists():
        raise StoreError(f"no store at {path}")
    return SessionStore.open(path)


def _run(args: argparse.Namespace, body: Any) -> int:
    try:
        store = _open_existing(args.store)
    except StoreError as exc:
        print(f"runcast: {printable(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    try:
        body(store)
    except StoreError as exc:
        print(f"runcast: {printable(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        store.close()
    return 0


def _usage_dict(usage: UsageTotals) -> dict[str, Any]:
    return {**attrs.asdict(usage), "total_tokens": usage.total_tokens}


def _session_dict(session: SessionRecord) -> dict[str, Any]:
    data = attrs.asdict(session, recurse=False)
    data["usage"] = _usage_dict(session.usage)
    data["interrupted"] = _usage_dict(session.interrupted)
    return data


def sessions(args: argparse.Namespace) -> int:
    def body(store: SessionStore) -> None:
        records = store.sessions()
        if args.json:
            print(json_text([_session_dict(s) for s in records], indent=2))
            return
        rows = [
            [
                s.session_id,
                s.status,
                s.created_at[:19],
                _duration(s.duration_seconds),
                f"{s.usage.total_tokens:,}",
                _usd(s.usage.cost_usd),
                f"{s.tasks_completed}/{s.tasks_failed}/{s.tasks_cancelled}",
            ]
            for s in records
        ]
        headers = ["SESSION", "STATUS", "CREATED", "DURATION", "TOKENS", "COST", "OK/FAIL/CXL"]
        _table(headers, rows, sys.stdout)

    return _run(args, body)


@attrs.frozen
class _Shown:
    """What ``runcast show`` prints of one session, read in one go."""

    session: SessionRecord
    tasks: list[StoredTask]
    per_task: dict[str, UsageTotals]
    cut: dict[str, UsageTotals]
    models: dict[str, UsageTotals]
    #: The output formats each task's usage was read from (``TaskUsage.source``).
    sources: dict[str, list[str]]

    @classmethod
    def read(cls, store: SessionStore, session_id: str) -> _Shown:
        session = store.session(store.resolve(session_id))
        sid = session.session_id
        tasks = store.tasks(sid)
        return cls(
            session,
            tasks,
            {task.task_id: store.usage_totals(sid, task.task_id) for task in tasks},
            {
                task.task_id: store.usage_totals(sid, task.task_id, interrupted=True)
                for task in tasks
            },
            store.usage_by_model(sid),
            store.usage_sources(sid),
        )


def _show_json(shown: _Shown, controls: list[dict[str, Any]]) -> None:
    document = {
        "session": _session_dict(shown.session),
        "tasks": [
            {
                **attrs.asdict(task),
                "usage": _usage_dict(shown.per_task[task.task_id]),
                "interrupted": _usage_dict(shown.cut[task.task_id]),
                "usage_formats": shown.sources.get(task.task_id, []),
            }
            for task in shown.tasks
        ],
        "models": {model: _usage_dict(usage) for model, usage in shown.models.items()},
        "controls": controls,
    }
    print(json_text(document, indent=2))


def _show_text(shown: _Shown, out: TextIO) -> None:
    session, usage = shown.session, shown.session.usage
    print(
        f"session {printable(session.session_id)} ({printable(session.status)}), "
        f"duration {_duration(session.duration_seconds)}",
        file=out,
    )
    print(
        f"tokens {usage.total_tokens:,} (in {usage.input_tokens:,}, out "
        f"{usage.output_tokens:,}, cache read {usage.cache_read_tokens:,}, cache write "
        f"{usage.cache_write_tokens:,}), cost {_usd(usage.cost_usd)}, unpriced tokens "
        f"{usage.unpriced_tokens:,}",
        file=out,
    )
    if session.interrupted.records:
        print(interrupted_line(session.interrupted), file=out)
    print(file=out)
    task_rows = [
        [
            t.task_id,
            t.state,
            str(t.attempts),
            f"{shown.per_task[t.task_id].total_tokens:,}",
            _usd(shown.per_task[t.task_id].cost_usd),
            f"{shown.cut[t.task_id].total_tokens:,}",
            ",".join(shown.sources.get(t.task_id, [])) or "-",
            printable(t.error or "")[:60],
        ]
        for t in shown.tasks
    ]
    headers = [
        "TASK",
        "STATE",
        "ATTEMPTS",
        "TOKENS",
        "COST",
        "INTERRUPTED TOKENS",
        "USAGE FORMAT",
        "ERROR",
    ]
    _table(headers, task_rows, out)
    print(file=out)
    model_rows = [
        [m, f"{u.total_tokens:,}", _usd(u.cost_usd), f"{u.unpriced_tokens:,}"]
        for m, u in shown.models.items()
    ]
    _table(["MODEL", "TOKENS", "COST", "UNPRICED TOKENS"], model_rows, out)


def _show_controls(controls: list[dict[str, Any]], out: TextIO) -> None:
    """The pause, resume, budget and concurrency history (``--json``'s ``controls``),
    oldest first."""
    print(file=out)
    if not controls:
        print("no pause, resume or budget changes", file=out)
        return
    rows = [
        [
            str(control["at"]),
            str(control["kind"]),
            str(control["actor"]),
            _control_budget(control),
            str(control["reason"] or ""),
        ]
        for control in controls
    ]
    _table(["AT", "CHANGE", "BY", "BUDGET", "REASON"], rows, out)


def _control_budget(control: dict[str, Any]) -> str:
    if control["kind"] == "concurrency":  # (the column shows what the control set)
        return f"concurrency {control['concurrency']}"
    budget = control["budget_usd"]
    if budget is not None:
        return _usd(float(budget))
    # A budget change without an amount removed the budget; pause and resume have none.
    return "none" if control["kind"] == "budget" else "-"


def show(args: argparse.Namespace) -> int:
    def body(store: SessionStore) -> None:
        shown = _Shown.read(store, args.session_id)
        controls = store.controls(shown.session.session_id)
        if args.json:
            _show_json(shown, controls)
        else:
            _show_text(shown, sys.stdout)
            _show_controls(controls, sys.stdout)

    return _run(args, body)


def export(args: argparse.Namespace) -> int:
    def body(store: SessionStore) -> None:
        rows = store.usage_rows(store.resolve(args.session_id))
        if args.format == "jsonl":
            for row in rows:
                sys.stdout.write(json_text(row) + "\n")
            return
        columns = [
            "session_id",
            "task_id",
            "seq",
            "recorded_at",
            "model",
            "provider",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cost_usd",
            "cost_source",
            "attempt",
            "records",
            "interrupted",
            "source",
        ]
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        # Cells are escaped and kept from being formulas; numbers stay numbers.
        writer.writerows({key: csv_cell(value) for key, value in row.items()} for row in rows)

    return _run(args, body)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _usd(usd: float) -> str:
    return format_usd(usd, places=COST_PLACES)


def _table(headers: list[str], rows: list[list[str]], out: TextIO) -> None:
    """Aligned columns; every cell escaped first (ids, models and errors come from tasks).

    On a terminal the table is drawn with rich; piped (or too long to draw quickly),
    plain columns that scripts read.
    """
    if draws_table(out, len(rows)):
        from ..clients import print_table  # rich, only when drawing on a terminal

        print_table(out, headers, rows)
        return
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in [headers, *rows]:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )
