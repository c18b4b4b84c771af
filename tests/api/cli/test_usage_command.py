"""``runcast usage FILE...``: a recorded stdout read as a task's would be (issue 19)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from _terminal_support import as_terminal, styled, without_drawing

from api.cli import main

DATA = Path(__file__).parents[2] / "data" / "usage"


def test_each_file_gives_its_format_records_and_totals_per_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = [
        DATA / "claude-code" / "api-error-zero-usage-two-models.jsonl",
        DATA / "codex-exec" / "gpt5-single-turn.jsonl",
    ]
    assert main(["usage", *map(str, files), "--json", "--model", "gpt-5"]) == 0
    claude, codex = json.loads(capsys.readouterr().out)["files"]
    assert claude["formats"] == ["claude-code"]
    assert {model: entry["total_tokens"] for model, entry in claude["models"].items()} == {
        "claude-haiku-4-5-20251001": 1198 + 188,
        "claude-opus-4-5-20251101": 1039 + 791,
    }
    assert claude["cost_usd"] == pytest.approx(0.027108)
    assert claude["models"]["claude-opus-4-5-20251101"]["cost_sources"] == ["reported"]
    assert codex["formats"] == ["codex-exec"]
    [record] = codex["records"]
    assert (record["model"], record["input_tokens"], record["cache_read_tokens"]) == (
        "gpt-5",
        13296,
        163840,
    )
    assert record["cost_source"] == "computed"


def test_text_output_and_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (DATA / "gemini-json" / "flash-lite-router-plus-3-flash.json").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["usage", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("-: format gemini-json\n")
    assert "gemini-3-flash-preview  9,058  55" in out
    assert "total: 12,965 tokens" in out


def test_text_output_on_a_terminal_is_drawn_with_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (DATA / "gemini-json" / "flash-lite-router-plus-3-flash.json").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    terminal = as_terminal(monkeypatch, width=160)
    assert main(["usage", "-"]) == 0
    drawn = terminal.getvalue()
    assert styled(drawn)
    lines = without_drawing(drawn).splitlines()
    assert lines[0] == "-: format gemini-json"
    # The tables stay indented under their file's line, numbers right-aligned.
    assert lines[1].split() == [
        *("MODEL", "IN", "OUT", "CACHE", "R", "CACHE", "W"),
        *("COST", "COST", "SOURCE", "FORMAT"),
    ]
    assert all(line.startswith("  ") for line in lines[1:])
    assert any(line.split()[:3] == ["gemini-3-flash-preview", "9,058", "55"] for line in lines)
    assert lines[-1].startswith("  total: 12,965 tokens, cost $0.00")


def test_a_file_with_no_usage_and_an_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text('hello\n{"usage": {"tokens": 3}}\n')
    assert main(["usage", str(plain)]) == 0
    out = capsys.readouterr().out
    assert "format none recognised" in out
    assert "1 JSON line(s) looked like usage in no known format" in out
    assert main(["usage", str(plain), str(tmp_path / "missing.jsonl")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing is read before every file could be
    assert "runcast usage: cannot read" in captured.err
    assert "missing.jsonl: No such file or directory" in captured.err
