"""Issue 19 end to end: ``runcast run`` of ``cat RECORDING`` counts each model right.

Before: a multi-model Claude Code run was counted as its ``result.usage`` (the
main loop only) with all of ``total_cost_usd`` under one model.  Now
``runcast show --json`` lists each model with its ``modelUsage`` figures
(ground truth: tests/data/usage/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from _runcast_process import run_to_end

pytestmark = pytest.mark.integration

TIMEOUT = 60
DATA = Path(__file__).parents[1] / "data" / "usage"


async def run_and_show(
    tmp_path: Path, recordings: list[Path], extra: str = ""
) -> tuple[dict[str, Any], str]:
    """``runcast run`` of ``cat`` each recording, then ``show --json``: the report, run's stderr."""
    tasks = "".join(
        f'[[task]]\nid = "t{n}"\ncommand = {json.dumps(["cat", str(path)])}\n{extra}\n'
        for n, path in enumerate(recordings)
    )
    job = tmp_path / "job.toml"
    job.write_text(tasks, encoding="utf-8")
    store = str(tmp_path / "runcast.db")
    with trio.fail_after(TIMEOUT):
        code, out, err = await run_to_end(
            "run", str(job), "--port", "0", "--store", store, cwd=tmp_path
        )
        assert code == 0, err
        session_id = out.split("session: ")[1].split()[0]
        code, shown, show_err = await run_to_end(
            "show", session_id, "--store", store, "--json", cwd=tmp_path
        )
    assert code == 0, show_err
    report: dict[str, Any] = json.loads(shown)
    return report, err


async def test_claude_code_recordings_show_each_model_as_its_model_usage(
    tmp_path: Path,
) -> None:
    recordings = [
        DATA / "claude-code" / "sonnet45-side-calls-web-search.jsonl",
        DATA / "claude-code" / "opus45-two-results-success-then-error.jsonl",
    ]
    report, _ = await run_and_show(tmp_path, recordings)
    models = report["models"]
    expected = {
        # side calls: 183/17323/2294220/79207 $1.26568625 (sonnet), 780/1399/0/0 $0.007775
        # + two results: haiku 46220/1767/0/37684 $0.10216, opus 4/31539/4604604/101239
        "claude-sonnet-4-5-20250929": ((183, 17323, 2294220, 79207), 1.26568625),
        "claude-haiku-4-5-20251001": ((780 + 46220, 1399 + 1767, 0, 37684), 0.007775 + 0.10216),
        "claude-opus-4-5-20251101": ((4, 31539, 4604604, 101239), 3.72354075),
    }
    assert set(models) == set(expected)
    for model, (tokens, cost) in expected.items():
        usage = models[model]
        counted = (
            usage["input_tokens"],
            usage["output_tokens"],
            usage["cache_read_tokens"],
            usage["cache_write_tokens"],
        )
        assert counted == tokens, model
        assert usage["cost_usd"] == pytest.approx(cost, rel=1e-9), model
    assert report["session"]["usage"]["cost_usd"] == pytest.approx(1.27346125 + 3.82570075)
    assert [task["usage_formats"] for task in report["tasks"]] == [["claude-code"]] * 2


async def test_codex_gemini_and_unknown_usage_are_told_apart(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"usage": {"tokens_in": 5}}\n' * 3, encoding="utf-8")
    recordings = [
        DATA / "codex-exec" / "gpt5-single-turn.jsonl",
        DATA / "gemini-json" / "3-flash-cached-plus-3.1-flash-lite-router.json",
        unknown,
    ]
    report, err = await run_and_show(tmp_path, recordings, 'model = "gpt-5"')
    formats = [task["usage_formats"] for task in report["tasks"]]
    assert formats == [["codex-exec"], ["gemini-json"], []]
    codex = report["models"]["gpt-5"]
    assert (codex["input_tokens"], codex["cache_read_tokens"], codex["output_tokens"]) == (
        13296,
        163840,
        2836,
    )
    gemini = report["models"]["gemini-3-flash-preview"]
    assert (gemini["input_tokens"], gemini["cache_read_tokens"], gemini["output_tokens"]) == (
        29146,
        73161,
        3265,
    )
    assert err.count("usage_format_unrecognised") == 1
