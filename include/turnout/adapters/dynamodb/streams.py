"""DynamoDB Streams change reader: every shard, parents before children, from a per-shard checkpoint."""

from __future__ import annotations

import time
from typing import Optional

from ...errors import RecordError, TurnoutError
from ...ports import Change, Poll
from .client import DynamoDBConfig, _code, call_with_backoff, log


class DynamoDBChangeReader:
    """Every shard of a DynamoDB stream, parents before children, from a per-shard checkpoint."""

    def __init__(self, config: DynamoDBConfig, position: dict, state: dict | None, *, limit: int = 1000):
        self.reader = StreamReader(config, position["stream_arn"], position["key_attributes"])
        self.not_before = position["not_before"]
        self.shard_state: dict[str, dict] = (state or {}).get("shards", {})
        self.limit = limit
        self.iters: dict[str, Optional[str]] = {}
        self.shards: list[dict] = []
        self.shards_at = 0.0

    def state(self) -> dict:
        return {"shards": self.shard_state}

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

    def poll(self) -> Poll:
        now_m = time.monotonic()
        if not self.shards or now_m - self.shards_at > 10 or any(
                self.shard_state.get(s["ShardId"], {}).get("closed") for s in self.shards if s["ShardId"] in self.iters):
            self.shards, self.shards_at = self.reader.shards(), now_m
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
            it = self.iters.get(sid) or self.reader.iterator(sid, state["last_seq"])
            try:
                recs, nxt = self.reader.get_records(it, self.limit)
            except Exception as exc:
                code = _code(exc)
                if code == "ExpiredIteratorException":
                    self.iters[sid] = None
                    out.at_tip = False
                    continue
                if code == "TrimmedDataAccessException":
                    raise TurnoutError(
                        f"shard {sid}: stream records after {state['last_seq']} were trimmed before the capture "
                        "read them (the capture was down longer than the stream's retention). Changes are lost: "
                        "the migration must start over from a new position") from None
                raise
            for r in recs:
                try:
                    c = self.reader.to_change(r, sid)
                except RecordError as exc:
                    out.rejected.append((r.get("dynamodb", {}).get("Keys") or {}, str(exc)))
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

    def iterator(self, shard_id: str, after_sequence: Optional[str]) -> str:
        kw = {"StreamArn": self.arn, "ShardId": shard_id}
        if after_sequence:
            kw.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after_sequence)
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
