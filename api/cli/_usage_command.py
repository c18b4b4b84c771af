"""``runcast usage FILE...``: what runcast would count of a recorded stdout.

Each file (``-``: standard input) is read exactly as a task's stdout is: by
the executor's ``StdoutReader`` in a task of a real executor (64 KiB reads,
the same pricing), so what it prints is what a ``runcast run`` of a command
printing that file would record: the format(s) recognised, each usage event,
and the totals per model with their cost and cost source.  Nothing is stored.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import attrs
import trio

from events import MAX_NAME, Published, Publisher, TaskUsage
from executor import LineSplitter, TaskContext, UsageParser, open_executor
from executor.process import READ_CHUNK, StdoutReader

from ..clients import draws_table, format_usd, json_text, printable

EXIT_UNREADABLE = 2
_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


@attrs.frozen
class FileUsage:
    """What runcast read of one file."""

    name: str
    events: list[TaskUsage]
    lines_unrecognised: int

    @property
    def formats(self) -> list[str]:
        return list(dict.fromkeys(event.source for event in self.events if event.source))

    def by_model(self) -> dict[str, dict[str, Any]]:
        models: dict[str, dict[str, Any]] = {}
        for event in self.events:
            entry = models.setdefault(
                event.model, {**dict.fromkeys(_KINDS, 0), "cost_usd": None, "cost_sources": []}
            )
            for kind in _KINDS:
                entry[kind] += getattr(event, kind)
            if event.cost_usd is not None:
                entry["cost_usd"] = (entry["cost_usd"] or 0.0) + event.cost_usd
            if event.cost_source not in entry["cost_sources"]:
                entry["cost_sources"].append(event.cost_source)
        for entry in models.values():
            entry["total_tokens"] = sum(entry[kind] for kind in _KINDS)
        return models


def run_usage(args: argparse.Namespace) -> int:
    if len(args.model) > MAX_NAME or (args.provider and len(args.provider) > MAX_NAME):
        limit = f"at most {MAX_NAME} characters"
        print(f"runcast usage: --model and --provider: {limit}", file=sys.stderr)
        return EXIT_UNREADABLE
    inputs: list[tuple[str, bytes]] = []
    for name in args.files:
        try:
            data = sys.stdin.buffer.read() if name == "-" else _read(name)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            print(f"runcast usage: cannot read {printable(name)}: {reason}", file=sys.stderr)
            return EXIT_UNREADABLE
        inputs.append((name, data))
    files = trio.run(read_usage, inputs, args.model, args.provider)
    if args.json:
        print(json_text({"files": [_file_dict(found) for found in files]}, indent=2))
    else:
        for found in files:
            _print_file(found)
    return 0


def _read(name: str) -> bytes:
    with open(name, "rb") as file:
        return file.read()


async def read_usage(
    inputs: list[tuple[str, bytes]], model: str = "", provider: str | None = None
) -> list[FileUsage]:
    """Each ``(name, stdout)`` read as a task's stdout, in a task of its own."""
    publisher = Publisher()
    events: dict[str, list[TaskUsage]] = {}

    def keep(item: Published) -> None:
        if isinstance(item.event, TaskUsage):
            events.setdefault(item.event.task_id, []).append(item.event)

    publisher.add_listener(keep)
    unrecognised: dict[str, int] = {}

    def reader_for(task_id: str, data: bytes) -> Any:
        async def read(ctx: TaskContext) -> None:
            parser = UsageParser()
            reader = StdoutReader(ctx, parser=parser)
            splitter = LineSplitter()
            for at in range(0, len(data), READ_CHUNK):
                reader.on_stdout(splitter.feed(data[at : at + READ_CHUNK]))
                await trio.lowlevel.checkpoint()
            reader.on_stdout(splitter.finish())
            unrecognised[task_id] = parser.lines_unrecognised

        return read

    async with open_executor(publisher, concurrency=1) as executor:
        handles = [
            executor.submit(
                reader_for(f"file-{n}", data), task_id=f"file-{n}", model=model, provider=provider
            )
            for n, (_, data) in enumerate(inputs)
        ]
        for handle in handles:
            await handle.wait()
    return [
        FileUsage(name, events.get(f"file-{n}", []), unrecognised.get(f"file-{n}", 0))
        for n, (name, _) in enumerate(inputs)
    ]


def _event_dict(event: TaskUsage) -> dict[str, Any]:
    return {
        "model": event.model,
        "provider": event.provider,
        **{kind: getattr(event, kind) for kind in _KINDS},
        "cost_usd": event.cost_usd,
        "cost_source": event.cost_source,
        "records": event.records,
        "format": event.source,
    }


def _file_dict(found: FileUsage) -> dict[str, Any]:
    models = found.by_model()
    costs = [entry["cost_usd"] for entry in models.values() if entry["cost_usd"] is not None]
    return {
        "file": found.name,
        "formats": found.formats,
        "records": [_event_dict(event) for event in found.events],
        "models": models,
        "total_tokens": sum(entry["total_tokens"] for entry in models.values()),
        "cost_usd": sum(costs) if costs else None,
        "lines_unrecognised": found.lines_unrecognised,
    }


def _usd(usd: float | None) -> str:
    return "-" if usd is None else format_usd(usd, places=6)


def _print_file(found: FileUsage) -> None:
    print(f"{printable(found.name)}: format {', '.join(found.formats) or 'none recognised'}")
    if found.lines_unrecognised:
        print(f"  {found.lines_unrecognised} JSON line(s) looked like usage in no known format")
    records = [
        [
            event.model or "-",
            *(f"{getattr(event, kind):,}" for kind in _KINDS),
            _usd(event.cost_usd),
            event.cost_source,
            event.source or "-",
        ]
        for event in found.events
    ]
    head = ["MODEL", "IN", "OUT", "CACHE R", "CACHE W"]
    _table([*head, "COST", "COST SOURCE", "FORMAT"], records)
    print("  totals by model:")
    models = [
        [
            model or "-",
            *(f"{entry[kind]:,}" for kind in _KINDS),
            _usd(entry["cost_usd"]),
            ",".join(entry["cost_sources"]),
        ]
        for model, entry in found.by_model().items()
    ]
    _table([*head, "COST", "COST SOURCE"], models)
    document = _file_dict(found)
    print(f"  total: {document['total_tokens']:,} tokens, cost {_usd(document['cost_usd'])}")


def _table(headers: list[str], rows: list[list[str]]) -> None:
    """Aligned columns, indented under the file's line; drawn with rich on a terminal."""
    if draws_table(sys.stdout, len(rows)):
        from ..clients import print_table  # rich, only when drawing on a terminal

        print_table(sys.stdout, headers, rows, indent=2)
        return
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in [headers, *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
