"""DynamoDB Streams change reader: every shard, parents before children, from a per-shard checkpoint.

A gap is never passed over silently: a shard that vanished from the stream with records unread, a shard whose
first records were trimmed before the capture read them (a shard without a checkpoint is read from its own
starting sequence number, never from TRIM_HORIZON, so trimming raises), and a capture that last read the stream
longer ago than the stream's retention each stop the capture with the shard and the time window lost."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from ...errors import RecordError, TurnoutError
from ...ports import Change, Poll
from .client import DynamoDBConfig, _code, call_with_backoff, log


STREAM_RETENTION_SECONDS = 24 * 3600  # DynamoDB Streams keeps records 24 h


class StreamGap(TurnoutError):
    """Records the capture needed are no longer in the stream: the target would silently miss changes."""


def _when(t: float | None) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "?"


REEXPORT = ("the target cannot be brought up to date from this stream: start the migration over (a fresh staging "
            "prefix, or delete state/positions.json and the export/load state) so the export reads the table again")


class DynamoDBChangeReader:
    """Every shard of a DynamoDB stream, parents before children, from a per-shard checkpoint.

    :param reader: the stream API (a :class:`StreamReader`; tests pass a fake one)
    :param clock: wall-clock seconds (tests move it)
    """

    plain_images = False  # stream images can hold any type: the change-log writer checks them

    def __init__(self, config: DynamoDBConfig | None, position: dict, state: dict | None, *, limit: int = 1000,
                 reader: Any = None, clock: Callable[[], float] = time.time):
        if reader is None:
            if config is None:
                raise ValueError("a DynamoDBChangeReader needs a config or a reader")
            reader = StreamReader(config, position["stream_arn"], position["key_attributes"])
        self.reader = reader
        self.not_before = position["not_before"]
        self.shard_state: dict[str, dict] = (state or {}).get("shards", {})
        self.at_start: dict[str, dict] = position.get("shards_at_start") or {}
        self.limit = limit
        self.iters: dict[str, Optional[str]] = {}
        self.shards: list[dict] = []
        self.shards_at = 0.0
        self.clock = clock
        self.polled_at: float = (state or {}).get("polled_at") or position["recorded_at"]
        age = clock() - self.polled_at
        if age > STREAM_RETENTION_SECONDS:
            raise StreamGap(
                f"the capture last read the stream at {_when(self.polled_at)}, {age / 3600:.1f} h ago, longer than "
                f"DynamoDB Streams' {STREAM_RETENTION_SECONDS // 3600} h retention: changes made between "
                f"{_when(self.polled_at)} and {_when(clock() - STREAM_RETENTION_SECONDS)} may be gone; {REEXPORT}")

    def state(self) -> dict:
        return {"shards": self.shard_state, "polled_at": self.polled_at}

    def close(self) -> None:
        """Stream iterators are plain strings; nothing to release."""

    def advance_past(self, change: Change) -> None:
        sid, _, seq = change.origin.rpartition("/")
        s = self.shard_state.setdefault(sid, {"last_seq": None, "closed": False})
        if s["last_seq"] is None or int(seq) > int(s["last_seq"]):
            s["last_seq"] = seq
            self.iters.pop(sid, None)

    @property
    def open_shards(self) -> int:
        return sum(1 for s in self.shards if not self.shard_state.get(s["ShardId"], {}).get("closed"))

    def _check_vanished(self) -> None:
        """A shard the capture still had to read (checkpointed and open, or listed at the recorded position and
        never read) that the stream no longer lists held records nobody read."""
        listed = {s["ShardId"] for s in self.shards}
        needed = {sid: st.get("last_seq") for sid, st in self.shard_state.items() if not st.get("closed")}
        needed.update({sid: None for sid in self.at_start if sid not in self.shard_state})
        for sid, last in sorted(needed.items()):
            if sid not in listed:
                after = f"after sequence number {last}" if last else "from its start"
                raise StreamGap(
                    f"shard {sid} is gone from the stream with records unread {after}: it aged out of the stream's "
                    f"{STREAM_RETENTION_SECONDS // 3600} h retention while the capture was not reading (last read "
                    f"{_when(self.polled_at)}); the changes it held from then until it closed are lost; {REEXPORT}")

    def poll(self) -> Poll:
        now_m = time.monotonic()
        polled_at = self.clock()
        if not self.shards or now_m - self.shards_at > 10 or any(
                self.shard_state.get(s["ShardId"], {}).get("closed") for s in self.shards if s["ShardId"] in self.iters):
            self.shards, self.shards_at = self.reader.shards(), now_m
            self._check_vanished()
        known = {s["ShardId"] for s in self.shards}
        out = Poll(changes=[], at_tip=True)
        for s in self.shards:
            sid = s["ShardId"]
            state = self.shard_state.setdefault(sid, {"last_seq": None, "closed": False})
            if state["closed"]:
                self.iters.pop(sid, None)
                continue
            parent = s.get("ParentShardId")
            if parent and parent in known and not self.shard_state.get(parent, {}).get("closed"):
                out.at_tip = False
                continue  # parents before children: per-key order across a shard split
            start = None if state["last_seq"] else s.get("SequenceNumberRange", {}).get("StartingSequenceNumber")
            try:
                it = self.iters.get(sid) or self.reader.iterator(sid, state["last_seq"], at_sequence=start)
                recs, nxt = self.reader.get_records(it, self.limit)
            except Exception as exc:
                code = _code(exc)
                if code == "ExpiredIteratorException":
                    self.iters[sid] = None
                    out.at_tip = False
                    continue
                if code == "TrimmedDataAccessException":
                    after = f"after sequence number {state['last_seq']}" if state["last_seq"] else "from its start"
                    raise StreamGap(
                        f"shard {sid}: stream records {after} were trimmed before the capture read them (last read "
                        f"{_when(self.polled_at)}; the stream keeps {STREAM_RETENTION_SECONDS // 3600} h): the "
                        f"changes made on it from then until {_when(self.clock() - STREAM_RETENTION_SECONDS)} are "
                        f"lost; {REEXPORT}") from None
                raise
            for r in recs:
                try:
                    c = self.reader.to_change(r, sid)
                except RecordError as exc:
                    keys = r.get("dynamodb", {}).get("Keys") or {}
                    out.rejected.append((keys, str(exc), keys or None))
                    continue
                if c.created_at and c.created_at < self.not_before:
                    out.skipped_old += 1
                    continue
                out.changes.append(c)
            if recs:
                state["last_seq"] = recs[-1]["dynamodb"]["SequenceNumber"]
                out.at_tip = False
            if nxt is None:
                state["closed"] = True
                log.info("TURNOUT capture shard %s finished (closed)", sid)
            self.iters[sid] = nxt
        self.polled_at = polled_at  # every open shard was looked at (or waits for its parent) in this poll
        return out


class StreamReader:
    """DynamoDB Streams: shards, iterators, records -> :class:`Change`."""

    def __init__(self, config: DynamoDBConfig, stream_arn: str, key_attributes: list[str]):
        self.config, self.arn, self.key_attributes = config, stream_arn, key_attributes
        self.client = config.client("dynamodbstreams")

    def shards(self) -> list[dict]:
        out, start = [], None
        while True:
            kw = {"StreamArn": self.arn}
            if start:
                kw["ExclusiveStartShardId"] = start
            d = call_with_backoff(self.client.describe_stream, what="DescribeStream", **kw)["StreamDescription"]
            out.extend(d.get("Shards", []))
            start = d.get("LastEvaluatedShardId")
            if not start:
                return out

    def iterator(self, shard_id: str, after_sequence: Optional[str], at_sequence: Optional[str] = None) -> str:
        """After the checkpoint; else at the shard's own first sequence number (a trimmed start then raises
        TrimmedDataAccessException instead of silently starting later); TRIM_HORIZON only if neither is known."""
        kw = {"StreamArn": self.arn, "ShardId": shard_id}
        if after_sequence:
            kw.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after_sequence)
        elif at_sequence:
            kw.update(ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=at_sequence)
        else:
            kw.update(ShardIteratorType="TRIM_HORIZON")
        return call_with_backoff(self.client.get_shard_iterator, what=f"GetShardIterator {shard_id}", **kw)[
            "ShardIterator"
        ]

    def get_records(self, iterator: str, limit: int = 1000) -> tuple[list[dict], Optional[str]]:
        resp = call_with_backoff(
            self.client.get_records, what="GetRecords", ShardIterator=iterator, Limit=min(limit, 1000)
        )
        return resp.get("Records", []), resp.get("NextShardIterator")

    def to_change(self, rec: dict, shard_id: str) -> Change:
        d = rec["dynamodb"]
        key = d.get("Keys")
        if not key:
            raise RecordError(f"stream record {d.get('SequenceNumber')} on shard {shard_id} has no Keys")
        created = d.get("ApproximateCreationDateTime")
        created_at = created.timestamp() if hasattr(created, "timestamp") else float(created or 0)
        seq = d["SequenceNumber"]
        if rec["eventName"] == "REMOVE":
            return Change(key=key, op="delete", image=None, version=[int(seq)], created_at=created_at,
                          origin=f"{shard_id}/{seq}")
        image = d.get("NewImage")
        if image is None:
            raise RecordError(
                f"stream record {seq} on shard {shard_id} carries no NewImage: the stream view type must be "
                "NEW_AND_OLD_IMAGES or NEW_IMAGE"
            )
        return Change(key=key, op="put", image=image, version=[int(seq)], created_at=created_at,
                      origin=f"{shard_id}/{seq}")
