"""A budget shared through staging (turnout.shares.BudgetShare): tasks start at the static share, take a larger
one only after seeing fewer tasks alive and fewer units left than slots, give it back when they leave, and a task
killed without leaving stops counting once its lease is over while its unfinished unit keeps its share."""

from __future__ import annotations

import pytest

from turnout import layout
from turnout.retry import AdaptiveBucket
from turnout.shares import BudgetShare
from turnout.staging import LocalStaging


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_shares_follow_the_units_left_and_the_tasks_alive(tmp_path):
    st, clock = LocalStaging(tmp_path), Clock()
    kw = {"slots": 4, "units": 3, "clock": clock}
    a = BudgetShare(st, "write", "a", 400.0, unit="u0", **kw)
    b = BudgetShare(st, "write", "b", 400.0, unit="u1", **kw)
    assert a.share == b.share == 100.0  # the static share until each has looked
    assert a.look() is None  # not before ``every`` seconds
    clock.t += 5
    # two alive, three units left: the third unit's share stays free for it, nobody takes the whole budget
    assert a.look() == pytest.approx(400 / 3) and b.look() == pytest.approx(400 / 3)
    c = BudgetShare(st, "write", "c", 400.0, unit="u2", **kw)
    assert c.share == 100.0  # a newcomer starts small
    b.leave(finished=True)
    clock.t += 5
    assert a.look() == 200.0 and c.look() == 200.0  # two units left, both running: half each
    c.leave(finished=True)
    clock.t += 5
    assert a.look() == 400.0  # the last unit: the whole budget


def test_a_killed_holder_counts_until_its_lease_ends_and_its_unit_keeps_its_share(tmp_path):
    st, clock = LocalStaging(tmp_path), Clock()
    kw = {"slots": 3, "units": 3, "clock": clock, "lease": 30}
    a = BudgetShare(st, "read", "a", 90.0, unit="s0", **kw)
    BudgetShare(st, "read", "zombie", 90.0, unit="s1", **kw)  # SIGKILLed: never looks nor leaves
    BudgetShare(st, "read", "c", 90.0, unit="s2", **kw).leave(finished=True)
    clock.t += 5
    assert a.look() == 45.0  # a and the zombie alive, two units left
    clock.t += 30
    assert a.look() is None  # the zombie's record is gone, but its unit is not done: its retry needs the share
    assert [k for k in st.list(layout.budget_prefix("read")) if "/done/" not in k] == [
        layout.budget_holder("read", "a")]
    assert BudgetShare(st, "write", "x", 0.0, slots=2, clock=clock).look() is None  # no budget: nothing written
    assert not st.list(layout.budget_prefix("write"))


def test_without_a_unit_count_the_share_stays_static(tmp_path):
    st, clock = LocalStaging(tmp_path), Clock()
    a = BudgetShare(st, "write", "a", 300.0, slots=3, clock=clock)
    clock.t += 5
    assert a.look() is None and a.share == 100.0


def test_an_adaptive_bucket_keeps_its_place_when_its_budget_changes():
    b = AdaptiveBucket(100.0, clock=lambda: 0.0, sleep=lambda s: None, throttles=lambda: 0)
    b.rate = 70.0  # cut once by a throttle
    b.set_budget(200.0)
    assert b.budget == 200.0 and b.rate == 140.0
