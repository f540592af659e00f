"""The pipelined capture (change-log file N written in a writer thread while the binlog is read for file N+1), on
the project's real MariaDB: the checkpoint never moves past a file that is not durable, and a capture that dies
with a file in flight loses nothing and doubles nothing when it is restarted.

Nothing here waits on a timer: the test holds the put of change-log file 2 until it has seen the capture read the
changes of file 3 (the reader is ahead of the writer), looks at the checkpoint, then makes that put fail."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

import workload_mysql as wm
from test_engine_dynamodb import capture_until, run_bg
from test_engine_mysql import ctx_for, shop_spec, sql, uniq
from turnout import changelog, layout, phases

pytestmark = pytest.mark.server

PER_FILE = 10
UPDATES = 60  # one transaction each: PER_FILE changes per change-log file


class _HeldPut:
    """Holds the put of one change-log file until released, then fails it (a staging that went away)."""

    def __init__(self, ctx, n: int):
        self.key, self.real = changelog.file_key(n), ctx.staging.put_if
        self.reached, self.release = threading.Event(), threading.Event()
        ctx.staging.put_if = self

    def __call__(self, key, data, etag):
        if key.endswith(self.key):
            self.reached.set()
            assert self.release.wait(120), "the test never released the held put"
            raise OSError(f"staging unreachable while writing {key}")
        return self.real(key, data, etag)


class _CountedPolls:
    """Counts the polls of the capture's change reader that returned changes, and wakes a waiter at each."""

    def __init__(self, ctx):
        self.with_changes, self.cond = 0, threading.Condition()
        make = ctx.source.change_reader

        def change_reader(*a, **kw):
            reader = make(*a, **kw)
            poll = reader.poll

            def counted():
                p = poll()
                if p.changes:
                    with self.cond:
                        self.with_changes += 1
                        self.cond.notify_all()
                return p
            reader.poll = counted
            return reader
        ctx.source.change_reader = change_reader

    def wait_for(self, n: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.with_changes >= n, timeout=120)


def test_checkpoint_never_passes_a_file_in_flight_and_a_restart_captures_everything_once(stack, tmp_path):
    db = uniq("pipe")
    wm.create_database(stack["mariadb"], db)
    wm.seed(stack["mariadb"], db, UPDATES, orders_per_customer=1, lines_per_order=1)  # before the capture position
    spec = shop_spec(tmp_path, db, uniq("t"), **{"capture.max_records_per_file": PER_FILE})
    ctx = ctx_for(stack, spec)
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    [[(lo,)]] = sql(stack, ["SELECT MIN(order_id) FROM orders"], db)
    sql(stack, [f"UPDATE orders SET status = 'U{i}' WHERE order_id = {lo + i}" for i in range(UPDATES)], db)

    held, polls = _HeldPut(ctx, 2), _CountedPolls(ctx)
    cap_t, cap = run_bg(phases.run_capture, ctx, max_seconds=180)
    assert held.reached.wait(120), cap  # file 2 is in flight (held) ...
    assert polls.wait_for(4), cap  # ... and the reader has read file 3's changes ahead of it
    ck = ctx.staging.get_json(layout.CAPTURE_CHECKPOINT)
    assert (ck["next_file"], ck["records"]) == (2, 2 * PER_FILE), ck  # files 0 and 1 are durable: no further
    assert changelog.file_numbers(ctx.staging) == [0, 1]

    held.release.set()  # the put of file 2 fails: the capture stops, the checkpoint where it was
    cap_t.join(120)
    assert not cap_t.is_alive() and isinstance(cap.get("error"), OSError), cap
    ck = ctx.staging.get_json(layout.CAPTURE_CHECKPOINT)
    assert (ck["next_file"], ck["records"]) == (2, 2 * PER_FILE), ck
    assert changelog.file_numbers(ctx.staging) == [0, 1]

    out = capture_until(ctx_for(stack, spec), UPDATES)  # the restart, from the checkpoint
    assert out["records"] == UPDATES, out
    files = changelog.file_numbers(ctx.staging)
    assert files == list(range(len(files))) and out["files"] == len(files)  # consecutive, none skipped
    changes = [c for _, c in changelog.iter_changes(ctx.staging)]
    assert len(changes) == UPDATES and len({c.origin for c in changes}) == UPDATES  # each change exactly once
    assert Counter(c.image["status"]["S"] for c in changes) == Counter(f"U{i}" for i in range(UPDATES))
    versions = [c.version for c in changes]
    assert versions == sorted(versions)  # in commit order


def test_the_tip_is_reported_only_once_the_files_read_before_it_are_durable(stack, tmp_path):
    """The heartbeat's tip_poll_at tells the cutover's drain that everything before it is in the change log. With
    the last file's put held, a poll at the tip must not be reported until that file is durable: the order of the
    writes is recorded, the put is held until a heartbeat shows the tip (the defect) or a few seconds pass."""
    db = uniq("tip")
    wm.create_database(stack["mariadb"], db)
    wm.seed(stack["mariadb"], db, 5, orders_per_customer=1, lines_per_order=1)
    spec = shop_spec(tmp_path, db, uniq("t"), **{"capture.heartbeat_seconds": 0.2,
                                                 "capture.poll_interval_seconds": 0.05})
    ctx = ctx_for(stack, spec)
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    sql(stack, ["UPDATE orders SET status = 'late'"], db)  # one transaction: change-log file 0

    events: list[tuple[str, object]] = []
    tip_shown, file_key = threading.Event(), changelog.file_key(0)
    real_put_if, real_put_json = ctx.staging.put_if, ctx.staging.put_json

    def put_if(key, data, etag):
        if key.endswith(file_key):
            tip_shown.wait(5)  # held: until the tip is shown (the defect), or 5 s
            out = real_put_if(key, data, etag)
            events.append(("file 0 durable", None))
            return out
        return real_put_if(key, data, etag)

    def put_json(key, doc):
        real_put_json(key, doc)
        if key.endswith(layout.CAPTURE_HEARTBEAT) and doc.get("tip_poll_at") is not None:
            events.append(("tip shown", doc["tip_poll_at"]))
            tip_shown.set()

    ctx.staging.put_if, ctx.staging.put_json = put_if, put_json
    out = capture_until(ctx, 5)
    assert out["records"] == 5, out
    kinds = [k for k, _ in events]
    assert "file 0 durable" in kinds and "tip shown" in kinds, events
    assert kinds.index("file 0 durable") < kinds.index("tip shown"), events
