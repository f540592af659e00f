"""What the three live writers and comparators (workload.py for DynamoDB, workload_mysql.py, workload_mongo.py)
share: a paced writer thread that counts its operations and its errors and whose stop() joins and re-raises,
and the shape of a comparison report.

A writer subclass implements ``step()`` (one operation; it bumps ``self.counts``) and, if it needs them,
``open()`` / ``close()`` (per-thread connections). An exception of one of ``self.transient`` types in a step is
counted as an error (its text kept in ``self.errors``) and the writer goes on; any other exception ends the
thread, and ``stop()`` raises it — a writer that died silently would make a live test test nothing.
"""

from __future__ import annotations

import random
import threading
import time

# a live test accepts at most this share of a writer's operations failing (and prints every error it saw)
MAX_ERROR_SHARE = 0.01


class Pacer:
    """A steady ``rate`` per second (0 = no limit). After a stall (a busy machine) it carries on at the rate
    rather than bursting to catch up."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate else 0.0
        self.next = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        self.next = max(self.next + self.interval, time.monotonic() - 1.0)
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class LiveWriterBase(threading.Thread):
    """A paced writer thread: ``step()`` until ``stop()``; ``counts`` per kind of operation plus ``errors``."""

    kinds: tuple[str, ...] = ()
    transient: tuple[type[BaseException], ...] = (Exception,)

    def __init__(self, rate: float, seed: int):
        super().__init__(daemon=True, name=type(self).__name__)
        self.rate = rate
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.counts: dict[str, int] = {k: 0 for k in self.kinds}
        self.errors: list[str] = []
        self.failure: BaseException | None = None

    # ---------------------------------------------------------------- for subclasses
    def open(self) -> None:
        """Per-thread set-up (connections), in the writer's thread."""

    def close(self) -> None:
        """Per-thread tear-down, in the writer's thread, however the loop ended."""

    def step(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- the loop
    def run(self) -> None:
        pacer = Pacer(self.rate)
        try:
            self.open()
            while not self.stop_event.is_set():
                try:
                    self.step()
                except self.transient as exc:  # counted; the writer goes on
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                pacer.wait()
        except BaseException as exc:  # re-raised by stop()
            self.failure = exc
        finally:
            self.close()

    def snapshot(self) -> dict:
        return {**self.counts, "errors": len(self.errors)}

    def stop(self, timeout: float = 300) -> dict:
        """Stop, join and return the counts (``errors`` included); raise if the writer died or did not stop."""
        self.stop_event.set()
        self.join(timeout)
        if self.is_alive():  # a write after the freeze would be a difference nobody made: say so, loudly
            raise RuntimeError(f"the live writer did not stop within {timeout:.0f} s: {self.snapshot()}")
        if self.failure is not None:
            raise RuntimeError(f"the live writer died: {self.failure!r} after {self.snapshot()}") from self.failure
        return self.snapshot()


def operations(counts: dict) -> int:
    """Operations a writer attempted (its counts without the error count and sub-counts like ``txn``)."""
    return sum(v for k, v in counts.items() if k not in ("errors", "txn"))


def error_bound(counts: dict) -> int:
    """How many errors a live test accepts of a writer with these counts (MAX_ERROR_SHARE of its operations)."""
    return int(MAX_ERROR_SHARE * (operations(counts) + counts.get("errors", 0)))


def diff(want: dict, have: dict, detail=None) -> dict:
    """The comparison report every comparator returns: counts, the first 20 missing / extra / different keys and
    the number of differences. ``detail(key)``, if given, describes a differing key (the first 5 are kept)."""
    missing = [k for k in want if k not in have]
    extra = [k for k in have if k not in want]
    different = [k for k in want if k in have and want[k] != have[k]]
    out = {"source": len(want), "target": len(have), "missing": missing[:20], "extra": extra[:20],
           "different": different[:20], "differences": len(missing) + len(extra) + len(different)}
    if detail is not None:
        out["detail"] = {k: detail(k) for k in different[:5]}
    return out
