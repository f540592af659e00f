"""Change streams of every selected collection, read into changes with full images."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

from ...errors import TurnoutError
from ...ports import Change, Poll
from .codec import BSON

if TYPE_CHECKING:
    from .source import MongoSource


def _j(v: Any) -> Any:
    return BSON.to_json({"ns": "x.x", "_id": v})["_id"]


def _v(j: Any) -> Any:
    return BSON.from_json({"ns": "x.x", "_id": j})["_id"]


def _created_at(ev: dict) -> float:
    import datetime as dt

    from bson import Timestamp

    t = ev.get("clusterTime")
    if isinstance(t, Timestamp):
        return float(t.time)
    if isinstance(t, dt.datetime):
        return t.timestamp() if t.tzinfo else t.replace(tzinfo=dt.timezone.utc).timestamp()
    wall = ev.get("wallTime")
    if isinstance(wall, dt.datetime):
        return wall.timestamp() if wall.tzinfo else wall.replace(tzinfo=dt.timezone.utc).timestamp()
    return time.time()


class CaptureStalled(TurnoutError):
    """A read the capture needs still fails after its retries: the capture stops (its position unmoved) instead of
    dead-lettering the change and moving on; the task's retry resumes from the checkpoint."""


class MongoChangeReader:
    """One change stream per collection, resumed from its token; versions count changes in reading order."""

    plain_images = False  # documents, not wire items: the change-log writer takes its general path

    def __init__(self, source: MongoSource, position: dict, state: dict | None, *, limit: int = 1000):
        self.source, self.limit = source, limit
        st = state or {}
        self.tokens: dict[str, Any] = dict(st.get("tokens") or position["tokens"])
        self.seq = int(st.get("seq", 0))
        missing = sorted(ns for ns, t in self.tokens.items() if t is None)
        if missing:  # a stream opened without a token starts "from now" at every poll: changes in between are lost
            raise TurnoutError(f"no change stream resume token recorded for {missing}: the capture cannot tell where "
                               "to start; start the migration over (start_cdc records one per collection)")

    def close(self) -> None:
        """Streams are opened per poll and closed by it; nothing to release."""

    def state(self) -> dict:
        return {"tokens": dict(self.tokens), "seq": self.seq}

    def advance_past(self, change: Change) -> None:
        ns, token = change.origin.split("|", 1)
        import json

        if change.version[0] > self.seq:
            self.seq = change.version[0]
            self.tokens[ns] = json.loads(token)

    def poll(self) -> Poll:
        import json

        out: list[Change] = []
        rejected: list[tuple] = []  # (event, reason, source key or None)
        at_tip = True
        names = list(self.tokens)
        self._turn = (getattr(self, "_turn", -1) + 1) % max(1, len(names))
        for ns in names[self._turn:] + names[: self._turn]:  # a busy collection cannot starve the others
            token = _v(self.tokens[ns])
            with self.source._watch(ns, token) as s:
                while len(out) < self.limit:
                    ev = s.try_next()
                    if ev is None:
                        break
                    tok = s.resume_token
                    self.seq += 1
                    tok_j = _j(tok)
                    try:
                        c = self._change(ns, ev)
                    except CaptureStalled:
                        raise  # nothing moved: the checkpoint still points before this event
                    except Exception as exc:  # a malformed event: dead-lettered with its reason, never dropped
                        doc_key = (ev.get("documentKey") or {}) if isinstance(ev, dict) else {}
                        rejected.append((str(ev)[:2000], f"change stream {ns}: {exc}",
                                         {"ns": ns, "_id": doc_key["_id"]} if "_id" in doc_key else None))
                        c = None
                    if c is not None:
                        c.version = [self.seq]
                        c.origin = f"{ns}|{json.dumps(tok_j)}"
                        out.append(c)
                    self.tokens[ns] = tok_j
                else:
                    at_tip = False
                if s.resume_token is not None and len(out) < self.limit:
                    self.tokens[ns] = _j(s.resume_token)  # the post-batch token moves on idle streams too
        return Poll(changes=out, rejected=rejected, at_tip=at_tip)

    def _change(self, ns: str, ev: dict) -> Optional[Change]:
        op = ev.get("operationType")
        key_doc = ev.get("documentKey") or {}
        if "_id" not in key_doc:
            raise TurnoutError(f"event without documentKey._id: {str(ev)[:200]}")
        key = {"ns": ns, "_id": key_doc["_id"]}
        created = _created_at(ev)
        if op == "delete":
            return Change(key=key, op="delete", image=None, version=[], created_at=created)
        if op not in ("insert", "update", "replace"):
            return None  # drop/rename/invalidate of a collection: handled by preflight/validation, not per document
        doc = ev.get("fullDocument")
        if self.source.refetch or doc is None:
            from .client import with_retry

            try:
                doc = with_retry(self.source.coll(ns).find_one, {"_id": key["_id"]}, what=f"re-read of {key} in {ns}")
            except Exception as exc:
                raise CaptureStalled(f"capture stopped: {exc}; the change stream position was not moved past it") \
                    from exc
        if doc is None:  # deleted since: the document's latest state is "absent"
            return Change(key=key, op="delete", image=None, version=[], created_at=created)
        return Change(key=key, op="put", image={"ns": ns, "doc": doc}, version=[], created_at=created)
