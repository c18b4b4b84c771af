"""A worker's ledger of its commands' process groups, and the reaping of dead workers' ones."""

from __future__ import annotations

import fcntl
import os
import signal
import stat
from pathlib import Path

import attrs
import pytest
import structlog
import trio
import trio.testing
from _orphans_support import HOST, FakeProcesses, plant_ledger
from _worker_support import FakeLink

from api.cluster import Claim, ClusterError
from api.cluster._ledger import (
    GroupEntry,
    Ledger,
    LedgerContent,
    Owner,
    default_state_dir,
    open_state_dir,
    parse_ledger,
    write_atomically,
)
from api.cluster._orphans import OrphanReaper, open_orphan_guard
from api.cluster._proc import ProcFs, parse_stat
from api.cluster._worker import Worker, serve_worker

ME = Owner(pid=100, start_time=5_000)
DEAD = Owner(pid=200, start_time=4_000)
SLEEPER = GroupEntry(pgid=300, leader_start_time=4_100, task_id="sleepy")


def _reaper(directory: Path, processes: FakeProcesses) -> OrphanReaper:
    processes.run(ME.pid, ME.start_time)
    return OrphanReaper(directory, ME, HOST, processes)


def _orphan(processes: FakeProcesses, group: GroupEntry = SLEEPER) -> None:
    """The group's leader runs with its recorded start time, its group exists."""
    processes.run(group.pgid, group.leader_start_time)
    processes.groups.add(group.pgid)


# -- /proc ------------------------------------------------------------------------------
def test_a_stat_line_is_read_past_a_command_name_with_spaces_and_parentheses() -> None:
    fields_after_name = ["Z", *map(str, range(4, 22)), "987654", "0"]
    found = parse_stat(f"42 (evil) (name ) x) {' '.join(fields_after_name)}\n")
    assert (found.state, found.start_time, found.running) == ("Z", 987654, False)
    with pytest.raises(ValueError, match="not a /proc/<pid>/stat line"):
        parse_stat("42 (truncated) S 1 2")
    with pytest.raises(ValueError, match="field 22"):
        parse_stat(f"42 (x) S {' '.join(['1'] * 18)} soon 0\n")


def test_procfs_names_this_process_and_no_process_for_a_pid_out_of_range() -> None:
    procfs = ProcFs()
    mine = procfs.stat(os.getpid())
    assert mine is not None
    assert mine.running
    assert mine.start_time > 0
    # A process started later started at the same tick or after.
    assert procfs.stat(os.getppid()).start_time <= mine.start_time  # type: ignore[union-attr]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert procfs.stat(pid_max + 1) is None
    assert procfs.host_identity() == procfs.host_identity() != ""


# -- the state directory ------------------------------------------------------------------
def test_the_state_directory_comes_from_the_environment_then_the_runtime_dir_then_tmp() -> None:
    env = {"RUNCAST_STATE_DIR": "/srv/state", "XDG_RUNTIME_DIR": "/run/user/7"}
    assert default_state_dir(env) == Path("/srv/state")
    assert default_state_dir({"XDG_RUNTIME_DIR": "/run/user/7"}) == Path("/run/user/7/runcast")
    assert default_state_dir({}) == Path(f"/tmp/runcast-{os.getuid()}")


def test_the_state_directory_is_made_private_and_refused_when_others_may_write(
    tmp_path: Path,
) -> None:
    made = open_state_dir(tmp_path / "a" / "state")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ClusterError, match=r"shared \(RUNCAST_STATE_DIR\) may be written by"):
        open_state_dir(shared)
    (tmp_path / "file").write_text("")
    with pytest.raises(ClusterError, match=r"file .* is not a directory"):
        open_state_dir(tmp_path / "file")
    (tmp_path / "link").symlink_to(made)
    with pytest.raises(ClusterError, match=r"link .* is not a directory"):
        open_state_dir(tmp_path / "link")


# -- the ledger -----------------------------------------------------------------------------
def test_a_ledger_is_replaced_whole_and_a_failed_write_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.json"
    write_atomically(path, "old")

    def fail(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, "new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.json"]  # no tmp left


def _on_disk(ledger: Ledger) -> LedgerContent:
    return parse_ledger(ledger.path.read_text())


def _ledger(directory: Path) -> Ledger:
    processes = FakeProcesses()
    processes.run(SLEEPER.pgid, SLEEPER.leader_start_time)
    ledger = Ledger(directory / ME.ledger_name, ME, HOST, "w:me:1", processes)
    ledger.create()
    return ledger


async def test_a_ledger_records_groups_as_they_start_and_end(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    ledger = _ledger(tmp_path)
    assert _on_disk(ledger).groups == ()
    await nursery.start(ledger.serve_writes)

    ledger.on_process_group("sleepy", 300, True)
    await ledger.wait_written()
    content = _on_disk(ledger)
    assert (content.owner, content.host, content.instance) == (ME, HOST, "w:me:1")
    assert content.groups == (SLEEPER,)
    ledger.on_process_group("sleepy", 300, False)
    ledger.on_process_group("never-started", 301, False)  # (nothing to drop)
    await ledger.wait_written()
    assert _on_disk(ledger).groups == ()
    assert ledger.writes == 2
    ledger.close()
    assert not ledger.path.exists()


async def test_a_ledger_that_cannot_be_written_says_so_raises_nothing_and_tries_again(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(ClusterError, match=r"cannot write the worker's ledger .*missing"):
        Ledger(tmp_path / "missing" / "x.json", ME, HOST, "w", FakeProcesses()).create()
    ledger = _ledger(tmp_path)
    await nursery.start(ledger.serve_writes)
    replace = os.replace
    failures = [OSError(28, "No space left on device")] * 2

    def fail_twice(source: str, target: str) -> None:
        if failures:
            raise failures.pop()
        replace(source, target)

    monkeypatch.setattr(os, "replace", fail_twice)
    with structlog.testing.capture_logs() as logs:
        ledger.on_process_group("sleepy", 300, True)  # the executor's hook must not raise
        started = trio.current_time()
        await ledger.wait_written()
    assert trio.current_time() - started == 1.0 + 2.0  # tried again after 1 s, then 2 s
    assert ledger.write_errors == 2
    assert ["No space left" in entry["error"] for entry in logs] == [True, True]
    assert _on_disk(ledger).groups == (SLEEPER,)


async def test_a_worker_stopping_with_a_group_left_keeps_its_ledger_for_the_next_one(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    ledger = _ledger(tmp_path)
    ledger.on_process_group("sleepy", 300, True)  # (its writer stopped before this was written)
    ledger.close()
    assert _on_disk(ledger).groups == (SLEEPER,)


# -- reaping -------------------------------------------------------------------------------
def test_a_dead_workers_groups_are_killed_and_its_ledger_removed(tmp_path: Path) -> None:
    processes = FakeProcesses()
    _orphan(processes)
    ledger = plant_ledger(tmp_path, DEAD, (SLEEPER,))  # its owner's pid is gone
    reaper = _reaper(tmp_path, processes)
    with structlog.testing.capture_logs() as logs:
        assert reaper.sweep() == [SLEEPER]
    assert processes.sent == [(300, 0), (300, signal.SIGKILL)]
    assert not ledger.exists()
    assert (reaper.killed, reaper.ledgers_removed) == (1, 1)
    killed = next(entry for entry in logs if entry["event"] == "killed a dead worker's command")
    assert (killed["task_id"], killed["pgid"], killed["worker"]) == ("sleepy", 300, "w:dead:0000")
    assert reaper.sweep() == []  # nothing left to do


@pytest.mark.parametrize(
    ("state", "start_time"), [("S", 9_999), ("Z", DEAD.start_time), ("X", DEAD.start_time)]
)
def test_a_pid_reused_or_a_zombie_is_a_dead_owner(
    tmp_path: Path, state: str, start_time: int
) -> None:
    processes = FakeProcesses()
    _orphan(processes)
    processes.run(DEAD.pid, start_time, state)
    plant_ledger(tmp_path, DEAD, (SLEEPER,))
    assert _reaper(tmp_path, processes).sweep() == [SLEEPER]
    assert processes.killed == [300]


def test_a_live_workers_ledger_and_its_own_are_never_touched(tmp_path: Path) -> None:
    processes = FakeProcesses()
    _orphan(processes)
    processes.run(DEAD.pid, DEAD.start_time)  # alive after all
    theirs = plant_ledger(tmp_path, DEAD, (SLEEPER,))
    mine = plant_ledger(tmp_path, ME, (SLEEPER,))
    assert _reaper(tmp_path, processes).sweep() == []
    assert processes.sent == []
    assert theirs.exists()
    assert mine.exists()


def test_only_a_group_whose_leader_is_the_process_recorded_is_killed(tmp_path: Path) -> None:
    processes = FakeProcesses()
    reused = GroupEntry(pgid=301, leader_start_time=4_100, task_id="reused")
    processes.run(301, 8_000)  # the pgid is another process's now
    processes.groups.add(301)
    leaderless = GroupEntry(pgid=302, leader_start_time=4_100, task_id="leaderless")
    processes.groups.add(302)  # alive, its leader gone: cannot be told from a reused id
    ended = GroupEntry(pgid=303, leader_start_time=4_100, task_id="ended")
    other_users = GroupEntry(pgid=304, leader_start_time=4_100, task_id="other user's")
    processes.run(304, 4_100)
    processes.foreign.add(304)
    _orphan(processes)
    ledger = plant_ledger(tmp_path, DEAD, (reused, leaderless, ended, other_users, SLEEPER))
    reaper = _reaper(tmp_path, processes)
    with structlog.testing.capture_logs() as logs:
        assert reaper.sweep() == [SLEEPER]
    assert processes.killed == [300]
    assert (reaper.killed, reaper.unverified) == (1, 1)
    left_alone = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry.get("task_id") for entry in left_alone] == ["leaderless", "sleepy"]
    assert not ledger.exists()


def test_another_hosts_ledger_is_left_alone(tmp_path: Path) -> None:
    processes = FakeProcesses()
    _orphan(processes)
    ledger = plant_ledger(tmp_path, DEAD, (SLEEPER,), host="boot-2/pid:[4026531836]")
    assert _reaper(tmp_path, processes).sweep() == []
    assert processes.sent == []
    assert ledger.exists()


def test_an_unreadable_ledger_is_set_aside_and_named(tmp_path: Path) -> None:
    processes = FakeProcesses()
    impostor = Owner(201, 4_000)
    plant_ledger(tmp_path, DEAD, ())
    os.rename(tmp_path / DEAD.ledger_name, tmp_path / impostor.ledger_name)
    (tmp_path / DEAD.ledger_name).write_text('{"format": 1, "pid": 200')
    reaper = _reaper(tmp_path, processes)
    with structlog.testing.capture_logs() as logs:
        assert reaper.sweep() == []
    assert reaper.unreadable == 2
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        f"{DEAD.ledger_name}.unreadable",
        f"{impostor.ledger_name}.unreadable",
    ]
    assert {entry["event"] for entry in logs} == {"unreadable ledger set aside"}
    assert any("its file name" in entry["error"] for entry in logs)
    assert reaper.sweep() == []
    assert reaper.unreadable == 2  # said once


def test_a_dead_workers_unfinished_write_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    processes = FakeProcesses()
    processes.run(DEAD.pid + 1, DEAD.start_time)
    dead_tmp = tmp_path / f".{DEAD.ledger_name}.tmp"
    live_tmp = tmp_path / f".{Owner(DEAD.pid + 1, DEAD.start_time).ledger_name}.tmp"
    dead_tmp.write_text("{")
    live_tmp.write_text("{")
    _reaper(tmp_path, processes).sweep()
    assert not dead_tmp.exists()
    assert live_tmp.exists()


def test_a_sweep_under_way_elsewhere_is_not_done_twice(tmp_path: Path) -> None:
    processes = FakeProcesses()
    _orphan(processes)
    ledger = plant_ledger(tmp_path, DEAD, (SLEEPER,))
    reaper = _reaper(tmp_path, processes)
    with open(tmp_path / ".sweep.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert reaper.sweep() == []
        assert ledger.exists()
    assert reaper.sweep() == [SLEEPER]


async def test_a_running_reaper_sweeps_again_every_few_seconds(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    processes = FakeProcesses()
    _orphan(processes)
    reaper = _reaper(tmp_path, processes)
    await nursery.start(reaper.serve, 2.0)
    plant_ledger(tmp_path, DEAD, (SLEEPER,))  # a worker dies after this one started
    await trio.sleep(1.9)
    assert processes.killed == []
    await trio.sleep(0.2)
    assert processes.killed == [300]


# -- opening --------------------------------------------------------------------------------
def test_a_worker_opens_its_ledger_under_its_pid_and_start_time(tmp_path: Path) -> None:
    guard = open_orphan_guard(tmp_path / "state", "w:me:1")
    assert guard is not None
    procfs = ProcFs()
    mine = procfs.stat(os.getpid())
    assert mine is not None
    assert guard.ledger.owner == Owner(os.getpid(), mine.start_time)
    content = parse_ledger(guard.ledger.path.read_text())
    assert (content.owner, content.host, content.groups) == (
        guard.ledger.owner,
        procfs.host_identity(),
        (),
    )
    assert guard.reaper.sweep() == []  # its own ledger is not a dead worker's
    guard.ledger.close()
    assert list((tmp_path / "state").glob("worker-*")) == []


def test_without_proc_nothing_is_recorded_and_the_worker_says_so(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        guard = open_orphan_guard(tmp_path / "state", "w:me:1", ProcFs(tmp_path / "no-proc"))
    assert guard is None
    assert logs[0]["event"] == "no /proc: a killed worker's commands cannot be reaped"


# -- the worker -----------------------------------------------------------------------------
@attrs.define(eq=False)
class _WatchingLink(FakeLink):
    """Notes, at each claim, whether ``watched`` still exists."""

    watched: Path = attrs.field(kw_only=True)
    watched_at_claims: list[bool] = attrs.field(factory=list)

    async def claim(self, instance: str, max_n: int, lease_ms: int) -> list[Claim]:
        self.watched_at_claims.append(self.watched.exists())
        return await super().claim(instance, max_n, lease_ms)


def _plant_a_ledger_of_no_process(directory: Path) -> Path:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    gone = Owner(pid_max + 1, 1)  # no such process, ever
    group = GroupEntry(pid_max + 2, 1, "long-gone")
    return plant_ledger(directory, gone, (group,), host=ProcFs().host_identity())


async def test_a_worker_reaps_before_it_claims_and_removes_its_ledger_when_it_stops(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    dead = _plant_a_ledger_of_no_process(tmp_path)
    link = _WatchingLink(open_tasks=1, watched=dead)
    async with trio.open_nursery() as nursery:
        worker: Worker = await nursery.start(
            lambda task_status: serve_worker(
                link,  # type: ignore[arg-type]
                name="reaper",
                lease_seconds=3,
                state_dir=tmp_path,
                task_status=task_status,
            )
        )
        await trio.sleep(3)
        assert link.watched_at_claims[:1] == [False]  # swept before the first claim
        assert worker.orphans is not None
        own = worker.orphans.ledger.path
        assert parse_ledger(own.read_text()).instance == worker.instance
        worker.stop()
    assert not own.exists()
    assert worker.orphans.reaper.ledgers_removed == 1
