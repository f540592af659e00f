"""Day five: does the apply stay as fast, and as small, on a long change log?

Two local stagings hold a change log of SMALL and LARGE files (same changes per file, keys cycling over a fixed
key space). In each, the apply's checkpoint sits TAIL files before the end, as after days of capture; a fresh
apply process (a restart) applies the tail. Printed side by side, one run: the apply's time per change, its
peak RSS above the interpreter's baseline, and, for reference, what one full listing of the change-log prefix
costs (what every apply pass used to do).

The target is a counting sink in the apply's own process: the figure is the engine's cost (listing, reading,
ledger, coalescing, checkpoints), which is what grows with the log; a real target adds the same cost per change
to both sides. Each side runs in its own child process, so RSS is that side's alone.

    python bench/bench_apply_log.py [--small 1000] [--large 100000] [--tail 1000] [--per-file 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in ("include", "bench"):
    sys.path.insert(0, str(ROOT / p))

from benchlib import say  # noqa: E402

SPEC = """\
name: daylog
source: {kind: dynamodb, conn_id: s, table: t}
target: {kind: dynamodb, conn_id: d, table: t}
staging: {url: /tmp/unused}
apply: {lanes: 4, poll_interval_seconds: 0.01}
capture: {heartbeat_seconds: 5}
"""
KEYS = 50_000


def build(root: Path, files: int, per_file: int) -> None:
    """The change log as the capture writes it (gzip JSON lines, changelog/NNNNNNNNNNNN.jsonl.gz)."""
    d = root / "daylog" / "changelog"
    d.mkdir(parents=True, exist_ok=True)

    def one(n: int) -> None:
        rows = []
        for i in range(per_file):
            k = (n * per_file + i) % KEYS
            key = {"pk": {"S": f"k{k:06d}"}}
            rows.append({"k": key, "op": "put", "img": {**key, "v": {"N": str(n)}, "pad": {"S": "x" * 200}},
                         "v": [n * per_file + i], "ts": 1e9 + n, "cap": 1e9 + n, "o": f"shard/{n * per_file + i}"})
        body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
        (d / f"{n:012d}.jsonl.gz").write_bytes(gzip.compress(body, compresslevel=3))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(files)))


def _kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(root: str, files: int, tail: int) -> None:
    """One side, in its own process: a restarted apply over the last ``tail`` files; prints a JSON line."""
    from turnout import layout, phases, state
    from turnout.codec import key_text
    from turnout.ports import Capabilities, SourceCapabilities, WriteResult
    from turnout.runtime import Context
    from turnout.spec import parse_spec
    from turnout.staging import LocalStaging

    class Sink:
        capabilities = Capabilities(max_batch_items=25, max_item_bytes=400_000)

        def __init__(self):
            self.n = 0

        def apply_changes(self, changes):
            self.n += len(changes)
            for c in changes:
                key_text(c.key)
            return WriteResult(written=len(changes))

    class Source:
        capabilities = SourceCapabilities(reports_deletes=True, export_kinds=("scan",), ordering="bench",
                                          versions="log")

    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    base = _kb("VmHWM")
    st = LocalStaging(root).child("daylog")
    ctx = Context(spec=parse_spec(SPEC), staging=st, source_config=None, target_config=None,
                  log=logging.getLogger("bench"))
    ctx.__dict__["sink"], ctx.__dict__["source"] = Sink(), Source()
    from turnout.transform import Transform

    ctx.__dict__["transform"] = Transform(("pk",))
    state.save(st, layout.APPLY_CHECKPOINT, {"next_file": files - tail, "consumed": 0, "puts": 0, "deletes": 0,
                                             "stale": 0, "rejected": 0, "newest_ts": None})
    state.save(st, layout.CAPTURE_CONTROL, {"stop": True})
    state.save(st, layout.CAPTURE_HEARTBEAT, {"stopped": True, "next_file": files, "at": 0})
    t0 = time.perf_counter()
    out = phases.run_apply(ctx)
    el = time.perf_counter() - t0
    peak = _kb("VmHWM")  # before the reference listing below, which is not part of the apply
    t1 = time.perf_counter()
    listed = len(st.list(layout.CHANGELOG))
    list_s = time.perf_counter() - t1
    print(json.dumps({"consumed": out["consumed"], "seconds": el, "rss_kb": peak - base, "listed": listed,
                      "list_seconds": list_s}))


def run_side(root: Path, files: int, tail: int) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", str(root), str(files), str(tail)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--tail", type=int, default=1000)
    ap.add_argument("--per-file", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-applylog-") as tmp:
        roots = {}
        for name, n in (("small", a.small), ("large", a.large)):
            t0 = time.perf_counter()
            roots[name] = Path(tmp, name)
            build(roots[name], n, a.per_file)
            say(f"built {name}: {n} change-log files x {a.per_file} changes in {time.perf_counter() - t0:.1f} s")
        res: dict[str, list[dict]] = {"small": [], "large": []}
        for r in range(a.rounds):  # interleaved, so a noisy minute hits both sides
            for name, n in (("small", a.small), ("large", a.large)):
                res[name].append(run_side(roots[name], n, a.tail))
                say(f"round {r + 1} {name}: {res[name][-1]}")
        best = {k: min(v, key=lambda x: x["seconds"]) for k, v in res.items()}
        per = {k: b["seconds"] / max(1, b["consumed"]) * 1e6 for k, b in best.items()}
        print()
        print(f"{'':28}{'small log':>14}{'large log':>14}{'large/small':>14}")
        print(f"{'change-log files':28}{a.small:>14}{a.large:>14}{a.large / a.small:>14.0f}")
        print(f"{'changes applied (tail)':28}{best['small']['consumed']:>14}{best['large']['consumed']:>14}")
        print(f"{'apply us per change':28}{per['small']:>14.1f}{per['large']:>14.1f}{per['large'] / per['small']:>14.2f}")
        print(f"{'apply peak RSS above base MB':28}{best['small']['rss_kb'] / 1024:>14.1f}"
              f"{best['large']['rss_kb'] / 1024:>14.1f}"
              f"{best['large']['rss_kb'] / max(1, best['small']['rss_kb']):>14.2f}")
        print(f"{'one full listing (ref) s':28}{best['small']['list_seconds']:>14.3f}"
              f"{best['large']['list_seconds']:>14.3f}")
        ok = best["small"]["consumed"] == best["large"]["consumed"] == a.tail * a.per_file
        print(f"\ncounts {'OK' if ok else 'WRONG'}: each side applied its {a.tail} tail files' changes")
        return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
