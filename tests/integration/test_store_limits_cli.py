"""The real ``runcast`` on a store holding what SQLite integers and floats cannot sum or hold."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import trio
from _runcast_process import run_to_end

from api.cli._resume import job_key
from api.store._store import SessionStore
from broadcaster import MAX_TOTAL_COST_USD
from executor import load_job_file

pytestmark = pytest.mark.integration

TIMEOUT = 60
SIX_E18 = 6 * 10**18
SID = "s-unfinished"
USAGE_LINE = json.dumps({"usage": {"input_tokens": 5}, "model": "m", "cost_usd": 0.01})


def _job(tmp_path: Path) -> Path:
    argv = json.dumps([sys.executable, "-c", f"print({USAGE_LINE!r})"])
    path = tmp_path / "job.toml"
    path.write_text(f'[[task]]\nid = "quick"\ncommand = {argv}\n', encoding="utf-8")
    return path


def _unfinished_session(store_path: Path, job: Path) -> tuple[SessionStore, str]:
    """The job's session as a run that died at once leaves it (so the next run resumes it)."""
    store = SessionStore.open(store_path)
    store.begin_session(SID, job_key=job_key(load_job_file(job)), job_path=str(job))
    return store, SID


async def _run(job: Path, store_path: Path) -> tuple[int, str, str]:
    with trio.fail_after(TIMEOUT):
        return await run_to_end(
            "run", str(job), "--store", str(store_path), "--port", "0", cwd=job.parent
        )


async def test_a_write_the_store_cannot_take_ends_the_run_with_exit_2_and_the_reason(
    tmp_path: Path,
) -> None:
    # A session whose history reached SQLite's largest integer: the next event's
    # seq (2**63) makes the sqlite3 module raise OverflowError inside the write's
    # transaction (not a sqlite3.Error: it used to escape as a traceback, exit 1).
    job, store_path = _job(tmp_path), tmp_path / "runcast.db"
    store, sid = _unfinished_session(store_path, job)
    with store.conn:
        store.conn.execute(
            "INSERT INTO events (session_id, seq, wire) VALUES (?, ?, '{}')", (sid, 2**63 - 1)
        )
    store.close()
    code, _, err = await _run(job, store_path)
    assert code == 2, err
    assert "Traceback" not in err
    message = (
        f"runcast run: writing to store {store_path} failed: event seq {2**63} is more than "
        f"the store holds ({2**63 - 1})"
    )
    assert message in err
    # The executor was paused with the reason before the run stopped.
    assert "store failed" in err
    assert SessionStore.open(store_path).session(sid).status == "running"  # resumable


async def test_a_session_whose_sums_pass_integer_and_float_ranges_resumes_and_lists(
    tmp_path: Path,
) -> None:
    # Two usage rows of 6e18 tokens and $1e308 each, as a store written before the
    # parsers' bounds holds them: their SUM() overflowed ("integer overflow") and
    # the cost summed to inf ("$inf"; the resume refused "must be finite").
    job, store_path = _job(tmp_path), tmp_path / "runcast.db"
    store, sid = _unfinished_session(store_path, job)
    with store.conn:
        store.conn.executemany(
            "INSERT INTO usage (session_id, task_id, seq, recorded_at, model, input_tokens, "
            "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cost_source) "
            "VALUES (?, 'earlier', ?, 'then', 'm', ?, 0, 0, 0, 1e308, 'reported')",
            [(sid, seq, SIX_E18) for seq in (1, 2)],
        )
    store.close()
    code, out, err = await _run(job, store_path)
    assert code == 0, err
    assert f"resuming session {sid}" in out
    assert f"tokens: {2 * SIX_E18 + 5:,}" in out
    # The cost is held at its cap, however the summary groups its digits.
    assert f"cost:${MAX_TOTAL_COST_USD:.4f}" in re.sub(r"[ ,_]", "", out)
    assert "inf" not in out.lower()
    for command in (["sessions"], ["show", sid]):
        with trio.fail_after(TIMEOUT):
            code, shown, err = await run_to_end(*command, "--store", str(store_path), cwd=tmp_path)
        assert code == 0, err
        assert f"{2 * SIX_E18 + 5:,}" in shown
        assert "inf" not in shown.lower()


async def test_a_model_name_utf8_cannot_hold_is_stored_escaped(tmp_path: Path) -> None:
    # JSON can spell a lone surrogate, which Python decodes and SQLite's UTF-8 cannot
    # take: the write raised UnicodeEncodeError (a traceback, the run's usage lost).
    line = '{"usage": {"input_tokens": 3}, "model": "a\\ud800b"}'
    argv = json.dumps([sys.executable, "-c", f"print({line!r})"])
    job, store_path = tmp_path / "job.toml", tmp_path / "runcast.db"
    job.write_text(f'[[task]]\nid = "odd"\ncommand = {argv}\n', encoding="utf-8")
    code, _, err = await _run(job, store_path)
    assert code == 0, err
    store = SessionStore.open(store_path)
    [session] = store.sessions()
    [usage] = store.usage_rows(session.session_id)
    assert (usage["model"], usage["input_tokens"]) == ("a\\ud800b", 3)
