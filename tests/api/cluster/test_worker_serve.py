"""``serve_worker`` on a fake link: when it leaves, and that it says goodbye."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from _worker_support import FakeLink

from api.cluster._worker import Worker, serve_worker, session_prices


async def test_exit_when_idle_leaves_once_the_session_has_nothing_open(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    link = FakeLink(open_tasks=1)
    with trio.fail_after(30):  # the worker leaves by itself once idle
        await _idle_until_left(link, tmp_path)


async def _idle_until_left(link: FakeLink, state_dir: Path) -> None:
    async with trio.open_nursery() as nursery:
        worker: Worker = await nursery.start(
            lambda task_status: serve_worker(
                link,  # type: ignore[arg-type]
                name="idle",
                lease_seconds=3,
                exit_when_idle=True,
                state_dir=state_dir,
                task_status=task_status,
            )
        )
        await trio.sleep(10)
        assert link.forgotten == []  # a task is open (another worker's): stay
        link.open_tasks = 0
        link.paused = True
        await trio.sleep(10)
        assert link.forgotten == []  # a paused session is not idle
        link.paused = False
    assert link.forgotten == [worker.instance]
    assert worker.instance.startswith("w:idle:")
    assert link.renewed  # it sent heartbeats while it ran


async def test_stop_leaves_at_once_when_nothing_runs(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    link = FakeLink(open_tasks=5)
    async with trio.open_nursery() as nursery:
        worker: Worker = await nursery.start(
            lambda task_status: serve_worker(
                link,  # type: ignore[arg-type]
                name="stopper",
                state_dir=tmp_path,
                task_status=task_status,
            )
        )
        worker.stop()
    assert link.forgotten == [worker.instance]
    assert not worker.claims.claiming


def test_the_sessions_price_table_is_parsed_and_a_bad_one_named() -> None:
    import pytest

    from api.cluster import ClusterError

    table = session_prices('[models."m"]\ninput = 1.0\noutput = 2.0\n')
    assert table is not None
    assert table.lookup("m", None) is not None
    assert session_prices("") is None
    with pytest.raises(ClusterError, match="the session's price table"):
        session_prices("[models")
