"""A load task logs progress at a steady pace, even inside one slow chunk, and keeps its unit's progress file for
the Migrations view (pure unit: local staging, a slow fake sink)."""

import logging
import re
import threading
import time

from turnout import layout, phases
from turnout.ports import Capabilities, WriteResult
from turnout.runtime import Context
from turnout.spec import parse_spec
from turnout.staging import LocalStaging
from turnout.transform import Transform

SPEC = parse_spec("""\
name: t
source: {kind: dynamodb, conn_id: s, table: t}
target: {kind: dynamodb, conn_id: d, table: t}
staging: {url: /tmp/unused}
export: {chunk_items: 400}
load: {concurrency: 2}
""")


class MidChunkLines(logging.Handler):
    """Counts progress lines logged while the chunk is still being written (done=0, some items acknowledged)."""

    def __init__(self, want: int):
        super().__init__()
        self.want, self.seen, self.enough = want, 0, threading.Event()

    def emit(self, record):
        msg = record.getMessage()
        if "TURNOUT phase=load" in msg and " done=0 " in msg and " items=0 " not in msg:
            self.seen += 1
            if self.seen >= self.want:
                self.enough.set()


class SlowSink:
    """Writes batches slowly; past half the chunk it holds until the ticker has logged mid-chunk lines (so the
    test does not depend on how fast a busy machine schedules threads), or gives up after 60 s."""

    capabilities = Capabilities(max_batch_items=25, max_item_bytes=1000)

    def __init__(self, seconds_per_batch: float, hold_after: int, release: threading.Event):
        self.seconds, self.items, self.hold_after, self.release = seconds_per_batch, [], hold_after, release
        self.lock, self.timed_out = threading.Lock(), False

    def write_items(self, items):
        time.sleep(self.seconds)
        with self.lock:
            self.items.extend(items)
            held = len(self.items) >= self.hold_after
        if held and not self.release.wait(30):
            self.release.set()  # no lines came: let the chunk finish, and the test fail on what it logged
            self.timed_out = True
        return WriteResult(written=len(items))


def test_progress_lines_come_at_a_steady_pace_inside_one_slow_chunk(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(phases.load, "PROGRESS_SECONDS", 0.1)
    lines_mid = MidChunkLines(want=2)
    sink = SlowSink(0.02, hold_after=200, release=lines_mid.enough)  # 16 batches of 25 over 2 threads
    ctx = Context(spec=SPEC, staging=LocalStaging(tmp_path), source_config=None, target_config=None,
                  log=logging.getLogger("turnout.t"))
    ctx.__dict__["sink"] = sink
    ctx.__dict__["transform"] = Transform(("pk",))
    records = [{"pk": {"S": f"k{i:04d}"}, "x": {"N": str(i)}} for i in range(400)]
    ctx.staging.put_json("state/export_plan.json", {"segments": 1, "mode": "scan"})
    key, _ = ctx.chunks.write(ctx.staging, layout.chunk_prefix(0, 0), records, {})
    ctx.staging.put_json("export/seg-00000/checkpoint.json",
                         {"chunks": [{"key": key, "items": 400}], "items": 400, "done": True})
    assert phases.plan_load(ctx) == [0]

    logging.getLogger("turnout.t").addHandler(lines_mid)
    try:
        with caplog.at_level(logging.INFO, logger="turnout.t"):
            out = phases.load_chunk(ctx, 0)
    finally:
        logging.getLogger("turnout.t").removeHandler(lines_mid)
    assert not sink.timed_out, "no progress lines while the chunk was being written (the ticker is off?)"
    assert out["written"] == 400 and len(sink.items) == 400
    lines = [r.getMessage() for r in caplog.records if "TURNOUT phase=load" in r.getMessage()]
    parsed = [dict(re.findall(r"(\w+)=(\S+)", ln)) for ln in lines]
    mid = [p for p in parsed if p["done"] == "0"]
    assert len(mid) >= 2, lines  # lines while the only chunk was still being written
    counts = [int(p["items"]) for p in parsed]
    assert counts == sorted(counts) and any(0 < int(p["items"]) < 400 for p in mid) and counts[-1] == 400, lines
    assert parsed[-1]["done"] == parsed[-1]["total"] == "1" and all(p["rate"].endswith("/s") for p in parsed)
    unit = ctx.staging.get_json("load/units/unit-00000.json")
    assert (unit["chunks_done"], unit["written"], unit["rejected"]) == (1, 400, 0) and unit["finished_at"]
