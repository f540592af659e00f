"""Capacity units and the adaptive rate (turnout.retry.AdaptiveBucket), on a fake clock: no timing.

- DynamoDB's write unit: one WCU per started KB of each item (a 400 KB item costs 400, a 10-byte one 1),
  written from DynamoDB's documented rule (attribute name lengths + value sizes), not from Turnout's code;
- AIMD within the budget: a throttle cuts the rate to 70 % (once per cool-down, however many throttles came in
  it), never under the floor; each second without one adds 5 % of the budget back, never over the budget."""

from __future__ import annotations

from turnout.adapters.dynamodb import DynamoDBConfig, DynamoDBSink
from turnout.retry import AdaptiveBucket


def test_a_400_kb_item_costs_400_write_units():
    sink = DynamoDBSink(DynamoDBConfig(), "t")
    big = {"pk": {"S": "a"}, "blob": {"S": "x" * (400 * 1024 - 7)}}  # 2+1 + 4+409,593 = 409,600 bytes = 400 KB
    small = {"pk": {"S": "b"}, "n": {"N": "12345"}}  # 2+1 + 1+ (3 digits pairs + 1) bytes: well under 1 KB
    assert sink.write_units([big]) == 400.0
    assert sink.write_units([small]) == 1.0
    assert sink.write_units([big, small, small]) == 402.0
    just_over = {"pk": {"S": "c"}, "v": {"S": "y" * 1022}}  # 2+1 + 1+1022 = 1,026 bytes: 2 started KB
    assert sink.write_units([just_over]) == 2.0


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _bucket(budget=400.0):
    clock, count = Clock(), {"n": 0}
    b = AdaptiveBucket(budget, clock=clock, sleep=lambda s: setattr(clock, "t", clock.t + s),
                       throttles=lambda: count["n"])
    return b, clock, count


def test_a_throttle_cuts_the_rate_once_per_cool_down_and_never_under_the_floor():
    b, clock, count = _bucket()
    assert b.rate == 400.0
    count["n"] += 5  # five throttled requests since the last take: one cut
    b.adapt()
    assert b.rate == 280.0 and b.cuts == 1
    count["n"] += 3
    clock.t += 0.1  # within the cool-down: the same episode, no second cut
    b.adapt()
    assert b.rate == 280.0
    for _ in range(30):  # throttled again and again: down to the floor (2 % of the budget), not below
        count["n"] += 1
        clock.t += 0.6
        b.adapt()
    assert b.rate == 8.0


def test_quiet_seconds_add_the_rate_back_up_to_the_budget():
    b, clock, count = _bucket()
    count["n"] += 1
    b.adapt()
    assert b.rate == 280.0
    clock.t += 3.0  # three seconds without a throttle: +3 x 5 % of 400
    b.adapt()
    assert b.rate == 340.0
    clock.t += 100.0
    b.adapt()
    assert b.rate == 400.0  # never over the budget


def test_no_budget_means_nothing_to_adapt():
    b, clock, count = _bucket(budget=0)
    count["n"] += 10
    b.adapt()
    assert b.rate == 0 and b.take(1_000_000) == 0.0  # unlimited
