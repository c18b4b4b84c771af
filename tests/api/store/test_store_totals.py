"""The store's usage totals: exact past SQLite's integers, finite past a float's range."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from api.cli._main import main
from api.store._store import SessionStore, UsageTotals
from broadcaster import MAX_TOTAL_COST_USD, MAX_TOTAL_TOKENS

SID = "sess-big"
SIX_E18 = 6 * 10**18  # each fits a SQLite INTEGER (< 2**63), two do not
MAX_INT64 = 2**63 - 1


def _insert_usage(
    store: SessionStore,
    rows: list[tuple[str, int, int, int, int, float | None, str]],
    *,
    session_id: str = SID,
) -> None:
    """Usage rows written straight into the table: ``(task, in, out, read, write, cost,
    source)``, as a store written before the parsers' bounds may hold them."""
    store.begin_session(session_id)
    with store.conn:
        store.conn.executemany(
            "INSERT INTO usage (session_id, task_id, seq, recorded_at, model, input_tokens, "
            "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cost_source) "
            "VALUES (?, ?, ?, 'then', 'm', ?, ?, ?, ?, ?, ?)",
            [(session_id, row[0], seq, *row[1:]) for seq, row in enumerate(rows, start=1)],
        )


def test_token_sums_past_sqlite_integers_are_exact(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path / "x.db")
    _insert_usage(
        store,
        [
            ("a", SIX_E18, 0, 0, 0, None, "unpriced"),
            ("b", SIX_E18, MAX_INT64, MAX_INT64, MAX_INT64, None, "unpriced"),
            ("b", MAX_INT64, 1, 2, 3, 0.5, "reported"),
        ],
    )
    totals = store.usage_totals(SID)
    assert totals.input_tokens == 2 * SIX_E18 + MAX_INT64
    assert totals.output_tokens == MAX_INT64 + 1
    assert totals.cache_read_tokens == MAX_INT64 + 2
    assert totals.cache_write_tokens == MAX_INT64 + 3
    # One row's four kinds alone pass 2**63 - 1: still exact.
    assert totals.unpriced_tokens == 2 * SIX_E18 + 3 * MAX_INT64
    assert totals.cost_usd == 0.5
    assert totals.records == 3
    assert store.usage_totals(SID, "b").input_tokens == SIX_E18 + MAX_INT64
    assert store.usage_by_model(SID) == {"m": totals}
    assert store.session(SID).usage == totals
    assert [session.usage for session in store.sessions()] == [totals]


def test_a_session_without_usage_sums_to_zero(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path / "x.db")
    store.begin_session(SID)
    assert store.usage_totals(SID) == UsageTotals()
    assert store.usage_by_model(SID) == {}


def test_cost_sums_past_a_float_saturate_at_the_cap(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path / "x.db")
    _insert_usage(
        store, [("a", 1, 0, 0, 0, 1e308, "reported"), ("b", 1, 0, 0, 0, 1e308, "reported")]
    )
    [cost] = store.conn.execute("SELECT SUM(cost_usd) FROM usage").fetchone()
    assert cost == math.inf  # what SQLite makes of it
    assert store.usage_totals(SID).cost_usd == MAX_TOTAL_COST_USD
    assert store.usage_totals(SID, "a").cost_usd == MAX_TOTAL_COST_USD
    assert store.session(SID).usage.cost_usd == MAX_TOTAL_COST_USD


def test_token_sums_past_the_cap_saturate_at_it(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path / "x.db")
    store.begin_session(SID)
    rows_to_pass = MAX_TOTAL_TOKENS // MAX_INT64 + 1  # 108,422 rows of 2**63 - 1 tokens
    with store.conn:
        store.conn.execute(
            "WITH RECURSIVE n(seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM n WHERE seq < ?) "
            "INSERT INTO usage (session_id, task_id, seq, recorded_at, model, input_tokens, "
            "output_tokens, cache_read_tokens, cache_write_tokens, cost_source) "
            "SELECT ?, 'a', seq, 'then', 'm', ?, 5, 0, 0, 'unpriced' FROM n",
            (rows_to_pass, SID, MAX_INT64),
        )
    totals = store.usage_totals(SID)
    assert totals.input_tokens == MAX_TOTAL_TOKENS
    assert totals.unpriced_tokens == MAX_TOTAL_TOKENS
    assert totals.output_tokens == 5 * rows_to_pass  # the other totals stay exact
    assert totals.records == rows_to_pass


@pytest.fixture
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # main() configured it to write to this test's stderr


@pytest.mark.usefixtures("_reset_structlog")
@pytest.mark.parametrize("command", ["sessions", "show"])
def test_sessions_and_show_list_a_store_whose_sums_pass_sqlite_integers(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.db"
    store = SessionStore.open(path)
    _insert_usage(store, [("a", SIX_E18, 0, 0, 0, 1e308, "reported")] * 2)
    _insert_usage(store, [("c", 7, 0, 0, 0, 0.25, "reported")], session_id="sess-small")
    store.close()
    argv = [command, "--store", str(path)] + ([SID] if command == "show" else [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "12,000,000,000,000,000,000" in out
    assert "inf" not in out.lower()
    if command == "sessions":
        assert "sess-small" in out  # every other session stays listed


def test_a_sum_that_fails_for_another_reason_is_not_retried_away(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path / "x.db")
    store.begin_session(SID)
    store.conn.execute("DROP TABLE usage")
    with pytest.raises(sqlite3.OperationalError, match="no such table: usage"):
        store.usage_totals(SID)


def test_only_a_row_whose_kinds_pass_sqlite_integers_together_is_still_exact(
    tmp_path: Path,
) -> None:
    # No column's SUM overflows; the one row's unpriced kinds, added up in SQL, do
    # (SQLite makes that sum an inexact REAL without an error).
    store = SessionStore.open(tmp_path / "x.db")
    _insert_usage(store, [("a", MAX_INT64, MAX_INT64, 0, 0, None, "unpriced")])
    assert store.usage_totals(SID).unpriced_tokens == 2 * MAX_INT64
