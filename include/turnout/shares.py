"""A budget shared by every task of one kind running anywhere (Celery or Kubernetes workers), coordinated through
staging: each task holding a share keeps a small record ``budget/<kind>/<holder>.json`` with the time it last
said it was alive; a share is the budget over the holders alive (a record younger than the lease).

A task starts at the conservative static share (budget / parallel_tasks: Airflow runs at most that many at once)
and takes a larger one only once it has seen that fewer tasks are alive *and* that fewer units are left to do
than slots (each finished unit leaves a marker ``budget/<kind>/done/<unit>``): while units wait for a slot, a
finishing task's slot is refilled at once, so nobody grows into it. At the tail (the last units, or a lone
re-run) the tasks left share the whole budget. Two tasks starting together never take the whole budget each."""

from __future__ import annotations

import time
from typing import Callable, Optional

from . import layout, state


class BudgetShare:
    def __init__(self, staging, kind: str, holder: str, budget: float, slots: int, *, unit: str = "", units: int = 0,
                 clock: Callable[[], float] = time.time, lease: float = 30.0, every: float = 2.0):
        self.st, self.kind, self.holder, self.budget, self.slots = staging, kind, holder, budget, max(1, slots)
        self.unit, self.units = unit, units  # this task's unit and how many units there are (0: not known)
        self.clock, self.lease, self.every = clock, lease, every
        self.key = layout.budget_holder(kind, holder)
        self.share = budget / self.slots
        self.alive = 0
        self.looked = clock()  # the first look comes ``every`` seconds on: every task starting now is counted then
        if budget:
            state.save(staging, self.key, {"holder": holder, "at": self.looked})

    def look(self) -> Optional[float]:
        """Say this holder is alive and count the others (at most every ``every`` seconds); the new share when it
        changed, else None."""
        now = self.clock()
        if not self.budget or now - self.looked < self.every:
            return None
        self.looked = now
        state.save(self.st, self.key, {"holder": self.holder, "at": now})
        alive = 0
        done = len(self.st.list(layout.budget_done_prefix(self.kind))) if self.units else 0
        for k in self.st.list(layout.budget_prefix(self.kind)):
            if k.startswith(layout.budget_done_prefix(self.kind)):
                continue
            doc = self.st.get_json(k) if k != self.key else {"at": now}
            if doc and now - float(doc.get("at", 0)) <= self.lease:
                alive += 1
            elif doc:
                self.st.delete(k)  # a holder killed without leaving: its share is free again
        self.alive = max(1, alive)
        left = max(1, self.units - done) if self.units else self.slots  # units not finished, this one included
        share = self.budget / max(self.alive, min(self.slots, left))
        if share == self.share:
            return None
        self.share = share
        return share

    def leave(self, finished: bool = False) -> None:
        """Give the share back; ``finished``: this task's unit is done (it no longer waits for a slot)."""
        if self.budget:
            if finished and self.unit:
                state.save(self.st, layout.budget_done(self.kind, self.unit), {"at": self.clock()})
            self.st.delete(self.key)
