"""One live writer per staging prefix.

Airflow can run two copies of one task: a zombie whose heartbeat was lost and its retry, a worker cut off by
the network, a run marked failed while its task still runs. Every writer of a staging prefix (the capture, the
apply, each export unit, each load unit) therefore *owns* its checkpoint record:

- **Taking** a record raises its epoch with a conditional write (S3 ``If-Match`` on the ETag read, or
  ``If-None-Match: *`` when it does not exist yet; the same under a file lock on a local path). Of two tries
  that take it together, both succeed one after the other and the later one owns it: the newest try wins,
  which is the one Airflow believes in.
- **Every save** is conditional on the ETag this owner last wrote. A try whose record was taken over fails
  its next save with :class:`Fenced` and stops, having moved no checkpoint. Data it wrote before that is
  either immutable and adopted by the owner (change-log files: written at most once, ``If-None-Match``), or
  named by its epoch and never referenced (export chunks).
- **Writes outside staging** (the target) cannot be made conditional on a staging object, so they are fenced
  by time as well: an owner renews its record at least every ``lease_seconds / 4`` while it writes, and a new
  owner whose predecessor renewed less than ``lease_seconds`` ago (and did not release) waits out the rest of
  that lease before its first target write. A write batch must therefore finish within ``3/4`` of the lease
  (``staging.lease_seconds``, 30 s by default).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from typing import Any, Callable, Optional

from . import state
from .errors import TurnoutError
from .staging import Staging


class Fenced(TurnoutError):
    """This try lost its staging prefix to a newer one and stopped without writing."""


def _dumps(key: str, doc: dict) -> bytes:
    return json.dumps({**doc, "format": state.FORMATS[state.kind_of(key)]}, sort_keys=True, default=str).encode()


class Owned:
    """A checkpoint record owned by exactly one try. ``take()`` returns the record (``default`` when absent)."""

    def __init__(self, staging: Staging, key: str, what: str, who: dict, default: dict,
                 clock: Callable[[], float] = time.time, lease_seconds: float = 30.0):
        self.st, self.key, self.what, self.who, self.default = staging, key, what, who, default
        self.clock, self.lease_seconds = clock, lease_seconds
        self.etag: Optional[str] = None
        self.epoch = 0
        self.doc: dict = {}
        self.previous: Optional[dict] = None  # the owner this try took over from
        self.renewed = 0.0  # monotonic time of this owner's last successful save
        self._lock = threading.RLock()  # save/hold/check may run in a task's writer threads

    def _read(self) -> tuple[Optional[dict], Optional[str]]:
        data, tag = self.st.get_tagged(self.key)
        if data is None:
            return None, None
        return state.upgrade(state.kind_of(self.key), json.loads(data), f"{self.st.url}/{self.key}"), tag

    def take(self) -> dict:
        for _ in range(50):  # another try taking it at the same moment: read again and go one epoch higher
            doc, tag = self._read()
            doc = copy.deepcopy(self.default) if doc is None else doc
            prev = doc.get("owner")
            epoch = int((prev or {}).get("epoch", 0)) + 1
            now = self.clock()
            doc["owner"] = {"epoch": epoch, **self.who, "taken_at": now, "renewed_at": now}
            new = self.st.put_if(self.key, _dumps(self.key, doc), tag)
            if new is not None:
                self.etag, self.epoch, self.doc, self.previous = new, epoch, doc, prev
                self.renewed = time.monotonic()
                return doc
        raise TurnoutError(f"{self.what}: could not take {self.st.url}/{self.key} (50 conflicting tries)")

    def _lost(self) -> Fenced:
        cur, _ = self._read()
        o = (cur or {}).get("owner") or {}
        return Fenced(
            f"{self.what}: another try took over {self.st.url}/{self.key} (epoch {o.get('epoch', '?')} on "
            f"{o.get('host', '?')} pid {o.get('pid', '?')}); this try (epoch {self.epoch}, {self.who.get('host')} pid "
            f"{self.who.get('pid')}) stops without writing. Nothing is lost: the owner goes on from the last "
            "checkpoint.")

    def _still_mine(self) -> bool:
        """After a failed condition: is the stored record this very try's own last write (a PUT that succeeded but
        was retried by the client, answered 412/409)? Then adopt its ETag and go on."""
        cur, tag = self._read()
        o = (cur or {}).get("owner") or {}
        if o.get("epoch") == self.epoch and o.get("try") == self.who.get("try") and tag is not None:
            self.etag = tag
            return True
        return False

    def save(self, doc: Optional[dict] = None, *, release: bool = False) -> None:
        """Write the record if this try still owns it; else raise :class:`Fenced`. The record is serialized from
        a copy taken under the lock, so writer threads may renew while the task's thread builds the next one."""
        with self._lock:
            if doc is not None:
                self.doc = doc
            owner = {**self.doc.get("owner", {}), "epoch": self.epoch, **self.who, "renewed_at": self.clock()}
            if release:
                owner["released"] = True
            else:
                owner.pop("released", None)
            self.doc = {**self.doc, "owner": owner}
            data = _dumps(self.key, self.doc)
            new = self.st.put_if(self.key, data, self.etag)
            if new is None:
                if not self._still_mine():
                    raise self._lost()
                new = self.st.put_if(self.key, data, self.etag)
                if new is None:
                    raise self._lost()
            self.etag, self.renewed = new, time.monotonic()

    def release_after_failure(self) -> None:
        """Give the lease up once this try has stopped writing (its writer threads joined) after an error: the
        record as last saved, marked released, so Airflow's retry starts at once instead of waiting out the
        lease. A try that lost the record, or cannot reach staging, leaves it alone (the lease then runs out)."""
        try:
            self.save(release=True)
        except Exception:  # noqa: BLE001 - the error being raised is the one that matters
            pass

    def hold(self) -> None:
        """Call before each write outside staging: renew the lease when a quarter of it has passed, else check
        (one read) that no other try took the record. Raises :class:`Fenced` if one did."""
        with self._lock:
            if time.monotonic() - self.renewed >= self.lease_seconds / 4:
                self.save()
            else:
                self.check()

    def check(self) -> None:
        """Raise :class:`Fenced` if another try took the record (a read, no write)."""
        with self._lock:
            _doc, tag = self.st.get_tagged(self.key)
            if tag != self.etag and not self._still_mine():
                raise self._lost()

    def reload(self) -> dict:
        """The record as this owner last wrote it (after a conflict on a data file); Fenced if taken over."""
        doc, tag = self._read()
        if tag != self.etag or doc is None:
            raise self._lost()
        self.doc = doc
        return doc

    def predecessor_wait(self) -> float:
        """Seconds until the previous owner's lease runs out (0 if it released it or renewed long ago)."""
        p = self.previous or {}
        if not p or p.get("released"):
            return 0.0
        return max(0.0, float(p.get("renewed_at", 0)) + self.lease_seconds - self.clock())

    def wait_out_predecessor(self, log: Any, sleep: Callable[[float], None] = time.sleep) -> float:
        wait = self.predecessor_wait()
        if wait > 0:
            p = self.previous or {}
            log.info("TURNOUT %s: the previous try (epoch %s on %s pid %s) renewed its lease %.1f s ago; waiting "
                     "%.1f s for it to run out before writing to the target", self.what, p.get("epoch"),
                     p.get("host"), p.get("pid"), self.lease_seconds - wait, wait)
            sleep(wait)
        return wait


def lease_wait(doc: Optional[dict], lease_seconds: float, now: float) -> float:
    """Seconds left of the lease held on a record someone else owns (0 if released, finished or expired)."""
    o = (doc or {}).get("owner") or {}
    if not o or o.get("released"):
        return 0.0
    return max(0.0, float(o.get("renewed_at", 0)) + lease_seconds - now)
