"""DynamoDB Streams gaps stop the capture loudly, naming the shard and the time window lost (a fake stream plays the
service: shards, iterators, records and its TrimmedDataAccessException, as the DynamoDB Streams API documents them)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from turnout.adapters.dynamodb.streams import DynamoDBChangeReader, StreamGap

T0 = 1_800_000_000.0


class FakeStream:
    """Shards with records; ``trimmed`` holds (shard, sequence numbers) no longer readable."""

    def __init__(self, shards: dict[str, dict]):
        self.data = shards  # sid -> {"parent": ..., "records": [(seq, key)], "closed": bool, "start": seq}
        self.trimmed: set[tuple[str, str]] = set()
        self.iterators: list[tuple[str, str, str | None]] = []

    def shards(self):
        out = []
        for sid, d in self.data.items():
            rng = {"StartingSequenceNumber": d["start"]}
            if d.get("closed"):
                rng["EndingSequenceNumber"] = d["records"][-1][0] if d["records"] else d["start"]
            out.append({"ShardId": sid, "SequenceNumberRange": rng,
                        **({"ParentShardId": d["parent"]} if d.get("parent") else {})})
        return out

    def iterator(self, sid, after_sequence, at_sequence=None):
        kind = "AFTER" if after_sequence else "AT" if at_sequence else "TRIM_HORIZON"
        seq = after_sequence or at_sequence
        self.iterators.append((sid, kind, seq))
        if kind != "TRIM_HORIZON" and (sid, seq) in self.trimmed:
            raise ClientError({"Error": {"Code": "TrimmedDataAccessException", "Message": "trimmed"}}, "GetShardIterator")
        return f"{sid}|{kind}|{seq}"

    def get_records(self, it, limit=1000):
        sid, kind, seq = it.split("|")
        recs = self.data[sid]["records"]
        if kind == "AFTER":
            recs = [r for r in recs if int(r[0]) > int(seq)]
        elif kind == "AT":
            recs = [r for r in recs if int(r[0]) >= int(seq)]
        else:
            recs = [r for r in recs if (sid, r[0]) not in self.trimmed]
        out = [{"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": k}}, "NewImage": {"pk": {"S": k}},
                                                    "SequenceNumber": s, "ApproximateCreationDateTime": T0}}
               for s, k in recs]
        nxt = None if self.data[sid].get("closed") else f"{sid}|AFTER|{recs[-1][0] if recs else seq or '0'}"
        return out, nxt

    def to_change(self, rec, sid):
        from turnout.adapters.dynamodb.streams import StreamReader

        return StreamReader.to_change(self, rec, sid)  # the real record -> Change mapping


def position(shards_at_start):
    return {"stream_arn": "arn", "key_attributes": ["pk"], "recorded_at": T0, "not_before": T0 - 120,
            "shards_at_start": {s: {} for s in shards_at_start}}


def test_a_parent_shard_gone_with_unread_records_stops_the_capture_naming_it():
    stream = FakeStream({"shard-parent": {"start": "100", "records": [("100", "a"), ("101", "b")], "closed": True},
                         "shard-child": {"start": "200", "parent": "shard-parent", "records": [("200", "c")]}})
    r = DynamoDBChangeReader(None, position(["shard-parent"]), None, reader=stream, clock=lambda: T0 + 10)
    first = r.poll()
    assert [c.key["pk"]["S"] for c in first.changes] == ["a", "b", "c"]  # the parent to its end, then the child
    st = r.state()
    st["shards"]["shard-parent"]["closed"] = False  # as if killed before it read the shard to its end
    st["shards"]["shard-parent"]["last_seq"] = "100"
    del stream.data["shard-parent"]  # ... and the parent aged out of the stream meanwhile
    r2 = DynamoDBChangeReader(None, position(["shard-parent"]), st, reader=stream, clock=lambda: T0 + 20)
    with pytest.raises(StreamGap, match=r"shard shard-parent is gone from the stream with records unread after "
                                        r"sequence number 100"):
        r2.poll()


def test_a_shard_listed_at_the_position_and_gone_before_it_was_read_stops_the_capture():
    stream = FakeStream({"shard-b": {"start": "300", "records": [("300", "x")]}})
    r = DynamoDBChangeReader(None, position(["shard-a", "shard-b"]), None, reader=stream, clock=lambda: T0 + 5)
    with pytest.raises(StreamGap, match=r"shard shard-a is gone .* from its start"):
        r.poll()


def test_a_trimmed_start_is_not_read_from_trim_horizon_but_stops_naming_shard_and_window():
    stream = FakeStream({"shard-a": {"start": "100", "records": [("100", "lost"), ("150", "kept")]}})
    stream.trimmed.add(("shard-a", "100"))  # TRIM_HORIZON would now silently start at 150
    r = DynamoDBChangeReader(None, position(["shard-a"]), None, reader=stream, clock=lambda: T0 + 5)
    with pytest.raises(StreamGap, match=r"shard shard-a: stream records from its start were trimmed before the "
                                        r"capture read them \(last read 2027-01-15T08:00:00Z"):
        r.poll()
    assert ("shard-a", "AT", "100") in stream.iterators and not any(k == "TRIM_HORIZON" for _, k, _ in stream.iterators)


def test_a_checkpoint_older_than_the_retention_stops_before_reading():
    stream = FakeStream({"shard-a": {"start": "100", "records": [("100", "a")]}})
    st = {"shards": {"shard-a": {"last_seq": "100", "closed": False}}, "polled_at": T0}
    with pytest.raises(StreamGap, match=r"last read the stream at 2027-01-15T08:00:00Z, 25.0 h ago, longer than "
                                        r"DynamoDB Streams' 24 h retention"):
        DynamoDBChangeReader(None, position(["shard-a"]), st, reader=stream, clock=lambda: T0 + 25 * 3600)


def test_a_healthy_stream_reads_every_shard_parents_first_and_records_when_it_polled():
    stream = FakeStream({"p": {"start": "1", "records": [("1", "a")], "closed": True},
                         "c": {"start": "5", "parent": "p", "records": [("5", "b")]}})
    now = [T0 + 1]
    r = DynamoDBChangeReader(None, position(["p"]), None, reader=stream, clock=lambda: now[0])
    got = []
    for _ in range(3):
        now[0] += 1
        got += [c.key["pk"]["S"] for c in r.poll().changes]
    assert got == ["a", "b"]
    assert r.state()["polled_at"] == now[0]
