"""The store's back-pressure is said once, then summed up, never a warning pair per flap."""

from __future__ import annotations

import structlog.testing

from api.store._recorder import BackpressureLog


def test_a_flapping_backpressure_is_logged_first_then_summed_every_interval() -> None:
    now = [0.0]
    log = BackpressureLog(interval=30.0, clock=lambda: now[0])
    with structlog.testing.capture_logs() as logs:
        for _ in range(100):  # on for 0.1 s, off for 0.2 s, for 30 s
            log.changed(True, 10_000)
            now[0] += 0.1
            log.changed(False, 4_000)
            now[0] += 0.2
        log.changed(True, 10_000)
    said = [entry for entry in logs if entry["event"] == "store backpressure"]
    assert len(said) == 2
    assert said[0]["on"] is True
    assert said[0]["pending"] == 10_000
    assert "times_held" not in said[0]
    assert said[1]["times_held"] == 100  # the 100 after the first one said
    assert said[1]["held_seconds"] == 10.0
    assert said[1]["over_seconds"] == 30.0
    assert (log.times_held, round(log.held_seconds, 6)) == (101, 10.0)


def test_a_change_after_a_quiet_interval_is_said_at_once() -> None:
    now = [0.0]
    log = BackpressureLog(interval=30.0, clock=lambda: now[0])
    with structlog.testing.capture_logs() as logs:
        log.changed(True, 10_000)
        now[0] = 5.0
        log.changed(False, 100)
        now[0] = 100.0
        log.changed(True, 10_000)
    assert [entry["on"] for entry in logs] == [True, True]
    assert logs[1]["times_held"] == 1
    assert logs[1]["held_seconds"] == 5.0
