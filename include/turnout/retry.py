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


class AdaptiveBucket(TokenBucket):
    """A token bucket whose rate finds the fastest one the server allows, within ``budget`` units per second.

    AIMD, as TCP and the AWS SDKs' adaptive retry mode do: the rate starts at the budget; every request the
    server throttled since the last ``take`` (this process's count, :func:`throttled_total`) cuts it by
    ``decrease`` (at most once per ``cool_seconds``, so one burst of 429s is one cut), never below ``floor`` of
    the budget; each second without a throttle adds ``increase`` of the budget back, up to the budget.
    ``budget`` 0 = no limit (nothing to adapt)."""

    def __init__(self, budget: float, *, decrease: float = 0.7, increase: float = 0.05, floor: float = 0.02,
                 cool_seconds: float = 0.5, clock=time.monotonic, sleep=time.sleep, throttles=None,
                 burst: float = 0.25):
        super().__init__(budget, clock=clock, sleep=sleep)
        # at most a quarter of a second saved, not a whole one: the server keeps about a second's worth itself, so
        # what arrives bunched (a pause to decode the next chunk, a stalled network) stays within it
        self.burst = burst
        self.capacity = self.tokens = max(1.0, self.rate * burst)
        self.budget = float(budget)
        self.decrease, self.increase, self.floor, self.cool = decrease, increase, floor, cool_seconds
        self.throttles = throttles or throttled_total
        self.seen = self.throttles()
        self.grew_at = clock()
        self.cut_at = self.grew_at - cool_seconds  # the first throttle cuts at once
        self.cuts = 0

    def adapt(self) -> None:
        if self.budget <= 0:
            return
        now, seen = self.clock(), self.throttles()
        with self.lock:
            if seen > self.seen:
                self.seen = seen
                if now - self.cut_at >= self.cool:
                    self.rate = max(self.budget * self.floor, self.rate * self.decrease)
                    self.capacity = max(self.rate * self.burst, 1.0)
                    self.tokens = min(self.tokens, self.capacity)
                    self.cut_at = self.grew_at = now
                    self.cuts += 1
            elif now - self.grew_at >= 1.0:
                steps = int(now - self.grew_at)
                self.rate = min(self.budget, self.rate + steps * self.increase * self.budget)
                self.capacity = max(self.rate * self.burst, 1.0)
                self.grew_at += steps

    def take(self, n: float) -> float:
        self.adapt()
        return super().take(n)

    def set_budget(self, budget: float) -> None:
        """A new budget (this task's share changed): the adaptive rate keeps its place relative to it."""
        with self.lock:
            if self.budget > 0 and budget > 0:
                self.rate = self.rate * budget / self.budget
                self.capacity = max(self.rate * self.burst, 1.0)
                self.tokens = min(self.tokens, self.capacity)
                self.budget = float(budget)
