"""Backoff with full jitter, and a token bucket for read/write rate limits."""

from __future__ import annotations

import random
import threading
import time


_throttled = {"count": 0}
_throttled_lock = threading.Lock()


def note_throttled(n: int = 1) -> None:
    """Count a request the server throttled (a 429, ProvisionedThroughputExceeded, UnprocessedItems, a retryable
    MongoDB error): the process's total goes into the progress line and the metrics."""
    with _throttled_lock:
        _throttled["count"] += n


def throttled_total() -> int:
    """Throttled requests this process has seen so far."""
    return _throttled["count"]


def backoff_delays(base: float = 0.05, cap: float = 20.0, attempts: int = 12):
    """Full-jitter exponential backoff (AWS architecture blog): sleep U(0, min(cap, base*2^n))."""
    for n in range(attempts):
        yield random.uniform(0, min(cap, base * (2**n)))


class TokenBucket:
    """At most ``rate`` units per second on average, bursts up to one second's worth. rate 0 = no limit."""

    def __init__(self, rate: float, clock=time.monotonic, sleep=time.sleep):
        self.rate = float(rate)
        self.capacity = max(self.rate, 1.0)
        self.tokens = self.capacity
        self.clock, self.sleep = clock, sleep
        self.last = clock()
        self.lock = threading.Lock()

    def take(self, n: float) -> float:
        """Take n units, sleeping as needed; returns the seconds slept."""
        if self.rate <= 0:
            return 0.0
        slept = 0.0
        with self.lock:
            while True:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= min(n, self.capacity):
                    self.tokens -= n  # may go negative for n > capacity: the debt is paid by waiting
                    return slept
                wait = (min(n, self.capacity) - self.tokens) / self.rate
                self.sleep(wait)
                slept += wait
