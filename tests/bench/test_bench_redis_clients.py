"""The ``redis-clients`` benchmark (issue 21) runs end to end, with or without glide.

As ``tests/bench/test_bench_smoke.py`` does for the others: ``python -m bench --smoke
--only redis-clients`` in a subprocess against its own ``redis-server``, its JSON
read back. The benchmark checks its own work (every entry arrived, the script
refused a duplicate), so a client that lost events fails here. valkey-glide is an
optional bench dependency: one run hides it (``sys.modules["glide"] = None``) to
prove the glide half is skipped with a message, not an import error; the other
measures it when it is installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from bench._redis_adapters import stream_entries
from bench._redis_clients import load_glide

REPO = Path(__file__).resolve().parents[2]
NEEDS_REDIS_SERVER = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="redis-server is not installed (Debian package 'redis-server'; "
    "./scripts/ensure-system-deps installs it)",
)
#: Runs the bench's command line with valkey-glide unimportable, installed or not.
WITHOUT_GLIDE = (
    "import sys; sys.modules['glide'] = None; from bench.__main__ import main; "
    "sys.exit(main(sys.argv[1:]))"
)
MEASURES = {"append", "batch", "stream", "script", "script-batch", "concurrent", "catch-up"}


async def _run_bench(results: Path, *, hide_glide: bool) -> str:
    entry = ["-c", WITHOUT_GLIDE] if hide_glide else ["-m", "bench"]
    args = ["--smoke", "--only", "redis-clients", "--results-dir", str(results)]
    with trio.fail_after(120):
        finished = await trio.run_process(
            [sys.executable, *entry, *args], cwd=REPO, capture_stdout=True, capture_stderr=True
        )
    return finished.stdout.decode()


def _load(results: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((results / "redis_clients.json").read_text())
    assert document["benchmark"] == "redis_clients"
    assert document["event_bytes"] > 250  # a real task_usage frame
    assert set(document["measures"]) == MEASURES
    return document


def _check_client(document: dict[str, Any], name: str, measures: set[str]) -> None:
    for measure in measures:
        summary = document["measures"][measure][name]
        assert summary["events_per_second_median"] > 0
        assert summary["cpu_us_per_event_median"] > 0
        assert 0 < summary["p50_seconds"] <= summary["p99_seconds"]
    rounds = document["measures"]["append"][name]["rounds"]
    assert [r["events"] for r in rounds] == [document["sizes"]["appends"]]


@pytest.mark.integration
@NEEDS_REDIS_SERVER
async def test_without_glide_redis_py_is_measured_and_glide_skipped(tmp_path: Path) -> None:
    output = await _run_bench(tmp_path, hide_glide=True)

    assert "glide: skipped: valkey-glide is not installed" in output
    document = _load(tmp_path)
    assert document["glide_skipped"].startswith("valkey-glide is not installed")
    assert "glide" not in document["clients"]
    _check_client(document, "redis-py thread", MEASURES)
    _check_client(
        document, "redis-py inline", {"append", "batch", "script", "script-batch", "catch-up"}
    )
    assert "redis-py inline" not in document["measures"]["stream"]  # it would block the reader
    assert set(document["vs_redis_py_thread"]) == {"redis-py inline"}


@pytest.mark.integration
@NEEDS_REDIS_SERVER
@pytest.mark.skipif(
    importlib.util.find_spec("glide") is None, reason="valkey-glide is not installed"
)
async def test_with_glide_both_are_measured_in_the_same_run(tmp_path: Path) -> None:
    output = await _run_bench(tmp_path, hide_glide=False)

    assert "skipped" not in output
    document = _load(tmp_path)
    assert document["glide_skipped"] is None
    assert document["clients"]["glide"].startswith("valkey-glide ")
    _check_client(document, "glide", MEASURES)
    versus = document["vs_redis_py_thread"]["glide"]
    assert set(versus) == MEASURES
    for ratios in versus.values():
        assert ratios["events_per_second_ratio"] > 0
        assert ratios["p99_ratio"] > 0


def test_load_glide_names_the_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "glide", None)  # import glide -> ImportError
    monkeypatch.delitem(sys.modules, "bench._redis_glide", raising=False)

    opener, note = load_glide()

    assert opener is None
    assert note.startswith("valkey-glide is not installed")
    assert "pip install valkey-glide" in note


def test_xread_replies_of_both_protocols_give_the_same_entries() -> None:
    fields = {b"t": b"1", b"e": b"{}"}
    resp2 = [[b"k", [(b"1-0", fields), (b"1-1", fields)]]]
    resp3 = {b"k": [[(b"1-0", fields), (b"1-1", fields)]]}

    expected = [(b"1-0", fields), (b"1-1", fields)]
    assert stream_entries(resp2) == expected
    assert stream_entries(resp3) == expected
    assert stream_entries(None) == []
    assert stream_entries([]) == []
