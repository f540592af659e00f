"""What one refresh of the Migrations view costs against S3 staging (moto), as a migration grows.

The view reads ``turnout.status.migration_status``: one checkpoint per export segment and one progress file per
load unit, whatever the number of chunks. The naive alternative (what a view without the per-unit progress
files would have to do) lists and reads every chunk's done marker. Both are timed side by side on the same
staging, for a small and a 10x larger chunk count; the figures are ratios of one run. Prints, never asserts.

    PYTHONPATH=include:plugins:scripts .venv/bin/python bench/bench_status.py [--chunks 400] [--segments 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchlib import check, say

import boto3  # noqa: E402

import stack  # noqa: E402
from turnout.staging import open_staging  # noqa: E402
from turnout.status import migration_status  # noqa: E402


def seed(st, segments: int, chunks: int, units: int) -> None:
    """A migration after its load: export checkpoints, a load plan, done markers and unit progress files."""
    per_seg = max(1, chunks // segments)
    keys = []
    for s in range(segments):
        cks = [{"key": f"export/seg-{s:05d}/chunk-{c:05d}.jsonl.gz", "items": 5000, "bytes": 1 << 20}
               for c in range(per_seg)]
        keys += [c["key"] for c in cks]
        st.put_json(f"export/seg-{s:05d}/checkpoint.json", {"chunks": cks, "items": 5000 * per_seg, "done": True,
                                                             "started_at": 1.0, "finished_at": 2.0})
    st.put_json("state/export_plan.json", {"segments": segments, "mode": "scan", "recorded_at": 1.0})
    st.put_json("state/positions.json", {"kind": "bench", "recorded_at": 1.0})
    st.put_json("state/preflight.json", {"status": "GO"})
    groups = [keys[i::units] for i in range(units)]
    st.put_json("state/load_plan.json", {"groups": groups, "chunks": len(keys)})
    for u, g in enumerate(groups):
        for k in g:
            name = k.removeprefix("export/").replace("/", "-").removesuffix(".jsonl.gz")
            st.put_json(f"load/done/{name}.json", {"items": 5000, "written": 5000, "rejected": 0, "at": 2.0})
        st.put_json(f"load/units/unit-{u:05d}.json", {"unit": u, "chunks": len(g), "chunks_done": len(g),
                                                      "items": 5000 * len(g), "written": 5000 * len(g),
                                                      "rejected": 0, "started_at": 1.0, "finished_at": 2.0})


def naive(st) -> int:
    return sum(st.get_json(k)["written"] for k in st.list("load/done/"))


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=400)
    ap.add_argument("--segments", type=int, default=16)
    ap.add_argument("--units", type=int, default=8)
    a = ap.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="bench-status-"))
    ep = stack.start_moto(state)
    try:
        def s3():
            return boto3.client("s3", endpoint_url=ep["endpoint"], region_name="us-east-1",
                                aws_access_key_id="l", aws_secret_access_key="l")

        s3().create_bucket(Bucket="bench")
        rows = []
        for n in (a.chunks, a.chunks * 10):
            st = open_staging(f"s3://bench/n{n}", s3).child("m")
            t0 = time.perf_counter()
            seed(st, a.segments, n, a.units)
            say(f"seeded {n} chunks in {a.segments} segments, {a.units} load units in {time.perf_counter() - t0:.1f}s")
            t_status, status = timed(lambda: migration_status(st))
            t_naive, written = timed(lambda: naive(st), repeat=1)
            check(status["load"]["written"] == written == 5000 * status["load"]["chunks"],
                  f"both ways count the same items ({written})")
            rows.append((n, t_status, t_naive))
            say(f"{n:>6} chunks: migration_status {t_status * 1000:7.0f} ms | every done marker "
                f"{t_naive * 1000:8.0f} ms | {t_naive / t_status:5.1f}x")
        (n1, s1, v1), (n2, s2, v2) = rows
        say(f"10x the chunks: migration_status {s2 / s1:.2f}x the time, reading every marker {v2 / v1:.2f}x")
    finally:
        stack.down(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
