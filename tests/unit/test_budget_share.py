"""A budget shared through staging (turnout.shares.BudgetShare): tasks start at the static share, take a larger
one only after seeing fewer tasks alive, give it back when they leave, and a task killed without leaving stops
counting once its lease is over."""

from __future__ import annotations

from turnout import layout
from turnout.retry import AdaptiveBucket
from turnout.shares import BudgetShare
from turnout.staging import LocalStaging


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_shares_follow_the_tasks_alive(tmp_path):
    st, clock = LocalStaging(tmp_path), Clock()
    a = BudgetShare(st, "write", "a", 400.0, slots=4, clock=clock)
    b = BudgetShare(st, "write", "b", 400.0, slots=4, clock=clock)
    assert a.share == b.share == 100.0  # the static share until each has looked
    assert a.look() is None  # not before ``every`` seconds
    clock.t += 5
    assert a.look() == 200.0 and b.look() == 200.0  # two alive: half each, never the whole budget each
    b.leave()
    clock.t += 5
    assert a.look() == 400.0  # alone now
    c = BudgetShare(st, "write", "c", 400.0, slots=4, clock=clock)
    assert c.share == 100.0  # a newcomer starts small: a + c = 500 until a's next look
    clock.t += 5
    assert a.look() == 200.0 and c.look() == 200.0


def test_a_killed_holder_counts_until_its_lease_ends(tmp_path):
    st, clock = LocalStaging(tmp_path), Clock()
    a = BudgetShare(st, "read", "a", 90.0, slots=3, clock=clock, lease=30)
    BudgetShare(st, "read", "zombie", 90.0, slots=3, clock=clock, lease=30)  # SIGKILLed: never looks nor leaves
    clock.t += 5
    assert a.look() == 45.0
    clock.t += 30
    assert a.look() == 90.0
    assert st.list(layout.budget_prefix("read")) == [layout.budget_holder("read", "a")]  # its record is gone
    assert BudgetShare(st, "write", "x", 0.0, slots=2, clock=clock).look() is None  # no budget: nothing written
    assert not st.list(layout.budget_prefix("write"))


def test_an_adaptive_bucket_keeps_its_place_when_its_budget_changes():
    b = AdaptiveBucket(100.0, clock=lambda: 0.0, sleep=lambda s: None, throttles=lambda: 0)
    b.rate = 70.0  # cut once by a throttle
    b.set_budget(200.0)
    assert b.budget == 200.0 and b.rate == 140.0
