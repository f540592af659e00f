"""The phases' shared helpers: the one-in-flight writer (order, errors raised to the caller, nothing started after a
failure) and the collector switches (undone whatever happens)."""

from __future__ import annotations

import gc
import logging
import threading

import pytest

from turnout.phases._common import OneInFlight, gc_paused, long_lived_frozen


def test_one_in_flight_runs_jobs_in_order_one_at_a_time():
    w, seen, running = OneInFlight("t"), [], threading.Semaphore(1)

    def job(n):
        assert running.acquire(blocking=False), "two jobs ran at once"
        seen.append(n)
        running.release()
    for n in range(20):
        w.submit(job, n)
    w.wait()
    w.close()
    assert seen == list(range(20))


def test_a_failed_job_is_raised_and_the_next_one_never_starts():
    w, seen = OneInFlight("t"), []

    def bad():
        raise OSError("staging unreachable")
    w.submit(bad)
    with pytest.raises(OSError, match="unreachable"):
        w.submit(seen.append, 1)  # waits for the job before it: its error, and this job is not handed over
    w.wait()
    w.close()
    assert seen == []


def test_abandon_logs_the_job_error_and_stops(caplog):
    w = OneInFlight("t")
    w.submit(lambda: (_ for _ in ()).throw(ValueError("in flight")))
    with caplog.at_level(logging.WARNING):
        w.abandon(logging.getLogger("t"), "export unit 3")
    assert "export unit 3: the write in flight also failed" in caplog.text and "in flight" in caplog.text


def test_collector_switches_are_undone_on_error():
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError):
        with long_lived_frozen():
            assert gc.get_freeze_count() > 0
            with gc_paused():
                assert not gc.isenabled()
                raise RuntimeError("boom")
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        with gc_paused():  # left off if it was off
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
