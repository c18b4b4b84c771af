"""Issue 17 end to end: ``runcast run`` with a real task printing huge counts and names.

Before: a count of 2**63 made the store write raise OverflowError (traceback,
exit 1, the session's events rolled back); a 300-character model failed the
task with "ExceptionGroup: ..." and lost its usage; a 300-character model in
the job file was accepted and failed the task the same way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio
from _runcast_process import run_to_end

pytestmark = pytest.mark.integration

TIMEOUT = 60
PRINTS_HUGE_USAGE = """\
import json
print(json.dumps({"usage": {"input_tokens": 2**63}}))
print('{"usage": {"input_tokens": ' + '9' * 400 + '}}')
print(json.dumps({"usage": {"input_tokens": 1}, "cost_usd": 1e308}))
print(json.dumps({"type": "result", "usage": {"input_tokens": 2**63}}))
print(json.dumps({"usage": {"input_tokens": 5, "output_tokens": 2},
                  "model": "m" * 300, "cost_usd": 0.25}))
"""


def _job(tmp_path: Path, code: str, extra: str = "") -> Path:
    (tmp_path / "task.py").write_text(code, encoding="utf-8")
    argv = json.dumps([sys.executable, "task.py"])
    path = tmp_path / "job.toml"
    path.write_text(f'[[task]]\nid = "huge"\ncommand = {argv}\n{extra}', encoding="utf-8")
    return path


async def test_huge_counts_and_a_long_model_are_output_warnings_and_counted_usage(
    tmp_path: Path,
) -> None:
    job = _job(tmp_path, PRINTS_HUGE_USAGE)
    store = str(tmp_path / "runcast.db")
    with trio.fail_after(TIMEOUT):
        code, out, err = await run_to_end(
            "run", str(job), "--port", "0", "--store", store, cwd=tmp_path
        )
        assert code == 0, err
        assert "Traceback" not in err
        assert out[out.index("TASK") :].splitlines()[1].split()[:2] == ["huge", "completed"]
        assert "tokens: 7 (in 5, out 2, cache read 0, cache write 0)" in out
        assert "cost: $0.2500" in out
        assert err.count("usage_record_refused") == 4
        assert "input_tokens = 9223372036854775808 is not in 0..1,000,000,000,000" in err
        assert "(a number of 400 digits)" in err
        assert "cost_usd = 1e+308 is not in 0..1,000,000" in err
        assert "usage_name_cut" in err
        # The store holds the session whole: readable, with the usage counted.
        session_id = out.split("session: ")[1].split()[0]
        code, shown, err = await run_to_end(
            "show", session_id, "--store", store, "--json", cwd=tmp_path
        )
    assert code == 0, err
    report = json.loads(shown)
    assert report["session"]["usage"]["total_tokens"] == 7
    assert [task["state"] for task in report["tasks"]] == ["completed"]
    [model] = report["models"]
    assert len(model) == 256
    assert model.startswith("m" * 200)


async def test_a_long_model_in_the_job_file_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    job = _job(tmp_path, f"open({str(marker)!r}, 'w')", extra=f'model = "{"m" * 300}"\n')
    with trio.fail_after(TIMEOUT):
        code, out, err = await run_to_end("run", str(job), "--port", "0", cwd=tmp_path)
    assert code == 2
    assert f"{job}:4: task 1 ('huge'): model: must be at most 256 characters, got 300" in err
    assert "dashboard at" not in out
    assert not marker.exists()
