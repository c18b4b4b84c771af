"""Claude Code ``--output-format stream-json`` transcripts, made up but shaped like real ones.

Each turn is what Claude Code prints for one assistant message that uses a
tool: the assistant message twice (once per content block, same ``message.id``
and the same usage, which must be counted once), then the tool result as a
``user`` line.  The last line is the ``result`` with the run's totals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import attrs

MODEL = "claude-sonnet-4-5-20250929"
SESSION = "5f1c9a3e-bench-0000-0000-000000000000"


@attrs.frozen
class Transcript:
    path: Path
    lines: int
    usage_records: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


def _usage(turn: int) -> dict[str, object]:
    return {
        "input_tokens": 3 + turn % 7,
        "cache_creation_input_tokens": 120 + turn % 50,
        "cache_read_input_tokens": 14_000 + turn % 900,
        "output_tokens": 40 + turn % 60,
        "service_tier": "standard",
    }


def _assistant(turn: int, block: Mapping[str, object]) -> str:
    message = {
        "type": "assistant",
        "message": {
            "id": f"msg_01Bench{turn:010d}",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [block],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(turn),
        },
        "parent_tool_use_id": None,
        "session_id": SESSION,
    }
    return json.dumps(message)


def _tool_result(turn: int) -> str:
    message = {
        "type": "user",
        "message": {
            "role": "user",
            "content": [
                {
                    "tool_use_id": f"toolu_01Bench{turn:010d}",
                    "type": "tool_result",
                    "content": f"     1\tdef handler_{turn}(request):\n     2\t    return None\n",
                }
            ],
        },
        "parent_tool_use_id": None,
        "session_id": SESSION,
    }
    return json.dumps(message)


def turn_lines(turn: int) -> list[str]:
    text: dict[str, object] = {
        "type": "text",
        "text": f"Reading handler {turn} to see where it fails.",
    }
    tool = {
        "type": "tool_use",
        "id": f"toolu_01Bench{turn:010d}",
        "name": "Read",
        "input": {"file_path": f"/src/app/handlers/h{turn}.py"},
    }
    return [_assistant(turn, text), _assistant(turn, tool), _tool_result(turn)]


def _list_price_usd(totals: dict[str, int]) -> float:
    """What Anthropic's list prices for Sonnet 4.5 make of ``totals`` (USD per MTok)."""
    per_million = {"input": 3.0, "output": 15.0, "cache_read": 0.30, "cache_write": 3.75}
    return sum(totals[kind] * price for kind, price in per_million.items()) / 1_000_000


def write_transcript(path: Path, turns: int) -> Transcript:
    """Write ``turns`` usage-carrying turns plus the init and result lines."""
    totals = {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}
    lines = 0
    with path.open("w", encoding="utf-8") as file:
        init = {"type": "system", "subtype": "init", "session_id": SESSION, "model": MODEL}
        file.write(json.dumps(init) + "\n")
        lines += 1
        for turn in range(turns):
            for line in turn_lines(turn):
                file.write(line + "\n")
                lines += 1
            usage = _usage(turn)
            totals["input"] += int(str(usage["input_tokens"]))
            totals["output"] += int(str(usage["output_tokens"]))
            totals["cache_read"] += int(str(usage["cache_read_input_tokens"]))
            totals["cache_write"] += int(str(usage["cache_creation_input_tokens"]))
        result = {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "num_turns": turns,
            "session_id": SESSION,
            "total_cost_usd": round(_list_price_usd(totals), 6),
            "usage": {
                "input_tokens": totals["input"],
                "cache_creation_input_tokens": totals["cache_write"],
                "cache_read_input_tokens": totals["cache_read"],
                "output_tokens": totals["output"],
            },
        }
        file.write(json.dumps(result) + "\n")
        lines += 1
    return Transcript(
        path=path,
        lines=lines,
        usage_records=turns,
        input_tokens=totals["input"],
        output_tokens=totals["output"],
        cache_read_tokens=totals["cache_read"],
        cache_write_tokens=totals["cache_write"],
    )
