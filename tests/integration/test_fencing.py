"""Two copies of one task on one staging prefix (a zombie and its retry): exactly one goes on, the other stops
with a clear message having moved no checkpoint; nothing is lost and nothing doubled.

Real servers: DynamoDB Local (source and target, with its stream) and moto's S3 API for the staging, so the
conditional writes are S3's own If-None-Match / If-Match. The two tries run in threads of this process, each
with its own context and its own S3 client, exactly as two workers would. Where a test needs one try to be
caught between two writes, the try's staging is wrapped to pause there (the zombie's lost heartbeat)."""

from __future__ import annotations

import gzip
import json
import threading
import time

import boto3
import pytest

import workload
from test_engine_dynamodb import bulk_copy, run_bg, spec_for, uniq, wait_caught_up
from turnout import changelog, layout, phases
from turnout.adapters.dynamodb import DynamoDBConfig
from turnout.fencing import Fenced
from turnout.runtime import make_context

pytestmark = pytest.mark.server
LEASE = 3.0


def _s3(stack):
    return boto3.client("s3", endpoint_url=stack["s3"]["endpoint"], region_name="us-east-1",
                        aws_access_key_id="l", aws_secret_access_key="l")


def _bucket(stack) -> str:
    b = uniq("fence").replace("_", "-")
    _s3(stack).create_bucket(Bucket=b)
    return b


def _ctx(stack, table, bucket, chunk_items=500):
    """A fresh context (its own S3 client) on the same staging: one per try."""
    spec = spec_for(table, f"s3://{bucket}/runs")
    spec = spec.model_copy(update={"staging": spec.staging.model_copy(update={"lease_seconds": LEASE}),
                                   "export": spec.export.model_copy(update={"chunk_items": chunk_items})})
    cfg = dict(aws_access_key_id="l", aws_secret_access_key="l")
    return make_context(spec, DynamoDBConfig(endpoint_url=stack["source"]["endpoint"], **cfg),
                        DynamoDBConfig(endpoint_url=stack["target"]["endpoint"], **cfg),
                        staging_s3_factory=lambda: _s3(stack))


def _table(stack, n=1500):
    table = uniq("fence")
    workload.create_table(workload.client(stack["source"]["endpoint"]), table)
    workload.seed(stack["source"]["endpoint"], table, n)
    return table


def _stream_records(stack, table) -> set[str]:
    """Every record the source's stream holds, read with boto3 (not Turnout): shard id / sequence number."""
    ep = stack["source"]["endpoint"]
    ddb = workload.client(ep)
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", endpoint_url=ep, region_name="us-east-1", aws_access_key_id="l",
                           aws_secret_access_key="l")
    out: set[str] = set()
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        empty = 0
        while it and empty < 3:
            r = streams.get_records(ShardIterator=it, Limit=1000)
            recs = r["Records"]
            out.update(f"{shard['ShardId']}/{x['dynamodb']['SequenceNumber']}" for x in recs)
            empty = empty + 1 if not recs else 0
            it = r.get("NextShardIterator")
    return out


def _changelog_origins(stack, bucket, name) -> list[str]:
    """Every record's origin in the change log, read straight from S3 (gzip + JSON lines)."""
    s3, out = _s3(stack), []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"runs/{name}/changelog/"):
        for o in page.get("Contents", []):
            body = gzip.decompress(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
            out.extend(json.loads(line)["o"] for line in body.splitlines() if line.strip())
    return out


class _Paused:
    """Wrap a context's staging so that one conditional write waits for an event (the zombie's pause)."""

    def __init__(self, ctx, when, release: threading.Event, after: threading.Event | None = None):
        self.real, self.when, self.release, self.after = ctx.staging.put_if, when, release, after
        self.paused = threading.Event()
        ctx.staging.put_if = self

    def __call__(self, key, data, etag):
        if self.when(key, data) and not self.paused.is_set():
            self.paused.set()
            assert self.release.wait(60), "the test never released the paused try"
            out = self.real(key, data, etag)
            if self.after is not None:
                self.after.set()
            return out
        return self.real(key, data, etag)


def test_two_captures_one_change_log_every_record_once(stack):
    """The zombie capture pauses just before writing change-log file 0; its retry takes over; the zombie then
    writes file 0 (a file the retry is about to write itself) and stops at its next checkpoint. The retry finds
    the file, adopts it, and goes on: every stream record is in the change log exactly once, and the migration
    ends with zero differences."""
    table = _table(stack)
    bucket = _bucket(stack)
    a, b = _ctx(stack, table, bucket), _ctx(stack, table, bucket)
    bulk_copy(a)
    b_open, a_wrote = threading.Event(), threading.Event()
    first_file = changelog.file_key(0)
    za = _Paused(a, lambda k, d: k.endswith(first_file), release=b_open, after=a_wrote)
    zb = _Paused(b, lambda k, d: k.endswith(first_file), release=a_wrote)
    opened = b.staging.put_if

    def b_put(key, data, etag, _n=[0]):  # B's second checkpoint write is the one after its takeover and adopt
        out = opened(key, data, etag)
        if key.endswith(layout.CAPTURE_CHECKPOINT) and out is not None:
            _n[0] += 1
            if _n[0] == 2:
                b_open.set()
        return out

    b.staging.put_if = b_put
    writer = workload.LiveWriter(stack["source"]["endpoint"], table, 1500, rate=40)
    writer.start()
    zombie_t, zombie = run_bg(phases.run_capture, a)
    assert za.paused.wait(60)  # the zombie holds a poll's changes, about to write file 0
    owner_t, owner = run_bg(phases.run_capture, b)
    zombie_t.join(60)
    assert isinstance(zombie.get("error"), Fenced), zombie
    msg = str(zombie["error"])
    assert "another try took over" in msg and "epoch 2" in msg and "stops without writing" in msg
    assert zb.paused.wait(60)  # the owner did reach file 0 after the zombie wrote it: the adopt path ran
    app_t, app = run_bg(phases.run_apply, b)
    wait_caught_up(b)
    writer.stop()
    out = phases.cutover(b, approved_by="test")
    owner_t.join(60), app_t.join(60)
    assert "error" not in owner and "error" not in app, (owner, app)
    assert out["validation"]["ok"], out["validation"]

    origins = _changelog_origins(stack, bucket, a.spec.name)
    assert len(origins) == len(set(origins)), "a stream record is in the change log twice"
    assert set(origins) == _stream_records(stack, table)  # and none is missing
    cmp = workload.full_compare(stack["source"]["endpoint"], table, stack["target"]["endpoint"], f"{table}_copy")
    assert cmp["differences"] == 0, cmp


def test_two_captures_started_together_one_goes_on(stack):
    """Started at the same moment, with no pause: the later take wins, the other stops with Fenced."""
    table = _table(stack, 300)
    bucket = _bucket(stack)
    a, b = _ctx(stack, table, bucket), _ctx(stack, table, bucket)
    bulk_copy(a)
    go = threading.Barrier(2)
    results: dict[str, dict] = {}

    def run(name, ctx):
        go.wait()
        try:
            results[name] = {"result": phases.run_capture(ctx, max_seconds=6)}
        except Fenced as exc:
            results[name] = {"fenced": str(exc)}

    ts = [threading.Thread(target=run, args=(n, c)) for n, c in (("a", a), ("b", b))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert sorted("fenced" in r for r in results.values()) == [False, True], results


def test_two_applies_the_newer_one_goes_on(stack):
    """A running apply and a second try: the second waits out the first one's lease, the first stops at its next
    lease check; the survivor applies everything: zero differences."""
    table = _table(stack)
    bucket = _bucket(stack)
    a, b = _ctx(stack, table, bucket), _ctx(stack, table, bucket)
    bulk_copy(a)
    cap_t, cap = run_bg(phases.run_capture, a)
    writer = workload.LiveWriter(stack["source"]["endpoint"], table, 1500, rate=40)
    writer.start()
    first_t, first = run_bg(phases.run_apply, a)
    deadline = time.time() + 60
    while not (a.staging.get_json(layout.APPLY_CHECKPOINT) or {}).get("consumed"):
        assert time.time() < deadline and first_t.is_alive(), first
        time.sleep(0.2)
    second_t, second = run_bg(phases.run_apply, b)
    first_t.join(60)
    assert isinstance(first.get("error"), Fenced), first
    assert "apply: another try took over" in str(first["error"])
    wait_caught_up(b)
    writer.stop()
    out = phases.cutover(b, approved_by="test")
    cap_t.join(60), second_t.join(60)
    assert "error" not in cap and "error" not in second, (cap, second)
    assert out["validation"]["ok"], out["validation"]
    ck = a.staging.get_json(layout.APPLY_CHECKPOINT)
    assert ck["owner"]["epoch"] == 2 and ck["owner"]["released"]
    cmp = workload.full_compare(stack["source"]["endpoint"], table, stack["target"]["endpoint"], f"{table}_copy")
    assert cmp["differences"] == 0, cmp


def _chunk_keys(stack, bucket, name, seg_ck: dict) -> list[tuple[str, str]]:
    """The (pk, sk) of every item in the chunks a segment checkpoint lists, read straight from S3."""
    s3, keys = _s3(stack), []
    for c in seg_ck["chunks"]:
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=f"runs/{name}/{c['key']}")["Body"].read())
        for line in body.splitlines():
            if line.strip():
                d = json.loads(line)
                keys.append((d["pk"]["S"], d["sk"]["S"]))
    return keys


def test_two_tries_of_one_export_unit(stack):
    """The zombie export writes its second chunk and pauses before that chunk's checkpoint; the retry takes the unit
    over and finishes it under its own epoch's chunk names; the zombie's checkpoint write then fails. The unit's
    checkpoint lists every item of the table once, and no chunk of the zombie's that was not committed."""
    table = _table(stack, 1200)
    bucket = _bucket(stack)
    a, b = _ctx(stack, table, bucket, chunk_items=100), _ctx(stack, table, bucket, chunk_items=100)
    phases.preflight(a)
    phases.start_cdc(a)
    took = threading.Event()
    seg_ck = layout.segment_checkpoint(0)
    za = _Paused(a, lambda k, d: k.endswith(seg_ck) and len(json.loads(d)["chunks"]) == 2, release=took)
    zombie_t, zombie = run_bg(phases.export_segment, a, 0)
    assert za.paused.wait(60)
    done = phases.export_segment(b, 0)
    took.set()
    zombie_t.join(60)
    assert isinstance(zombie.get("error"), Fenced) and "export unit 0: another try took over" in str(zombie["error"])

    ck = b.staging.get_json(seg_ck)
    assert ck["done"] and ck["owner"]["epoch"] == 2 and ck["owner"]["released"]
    names = [c["key"].rsplit("/", 1)[1] for c in ck["chunks"]]
    assert names[0] == "chunk-00000.jsonl.gz" and all(n.endswith("-e2.jsonl.gz") for n in names[1:]), names
    zombie_chunk = f"runs/{a.spec.name}/export/seg-00000/chunk-00001.jsonl.gz"
    assert _s3(stack).head_object(Bucket=bucket, Key=zombie_chunk)  # written, but never listed
    keys = _chunk_keys(stack, bucket, a.spec.name, ck)
    assert len(keys) == len(set(keys)) == done["items"]
    # segment 0 of 3 holds its share of the table: the other two units hold the rest, each item once overall
    for seg in (1, 2):
        phases.export_segment(b, seg)
        keys += _chunk_keys(stack, bucket, a.spec.name, b.staging.get_json(layout.segment_checkpoint(seg)))
    src = {(it["pk"]["S"], it["sk"]["S"]) for it in workload.scan_all(stack["source"]["endpoint"], table)}
    assert sorted(keys) == sorted(src)


def test_two_tries_of_one_load_unit_and_a_zombie_load_after_apply_started(stack, caplog):
    """A load unit's zombie pauses between chunks; its retry takes the unit over and finishes it; the zombie stops
    before its next chunk. A second zombie (another unit) wakes up after the apply has started: it stops before
    writing a snapshot image over an applied change, and the apply waited out its lease first."""
    table = _table(stack, 1200)
    bucket = _bucket(stack)
    a, b = _ctx(stack, table, bucket, chunk_items=100), _ctx(stack, table, bucket, chunk_items=100)
    phases.preflight(a)
    phases.start_cdc(a)
    for seg in phases.plan_export(a):
        phases.export_segment(a, seg)
    units = phases.plan_load(a)
    assert len(units) == 4

    def pausing(at: int, release: threading.Event, paused: threading.Event):
        seen = []

        def hook(chunk):
            seen.append(chunk)
            if len(seen) == at:
                paused.set()
                assert release.wait(60)
        return hook

    took, paused = threading.Event(), threading.Event()
    zombie_t, zombie = run_bg(phases.load_chunk, a, 0, pausing(2, took, paused))
    assert paused.wait(60)  # unit 0's first chunk is loaded; the zombie is about to load the second
    done = phases.load_chunk(b, 0)
    assert done["skipped"] == 1 and done["chunks"] >= 1
    took.set()
    zombie_t.join(60)
    assert isinstance(zombie.get("error"), Fenced) and "load unit 0: another try took over" in str(zombie["error"])
    unit = b.staging.get_json(layout.load_unit(0))
    assert unit["owner"]["epoch"] == 2 and unit["owner"]["released"] and unit["finished_at"]

    # unit 1: a zombie pauses before its second chunk while the apply starts
    late, paused1 = threading.Event(), threading.Event()
    z1_t, z1 = run_bg(phases.load_chunk, a, 1, pausing(2, late, paused1))
    assert paused1.wait(60)
    for u in (2, 3):
        phases.load_chunk(b, u)
    caplog.set_level("INFO", logger="turnout")
    app_t, app = run_bg(phases.run_apply, b, max_seconds=1)
    deadline = time.time() + 30
    while not b.staging.exists(layout.APPLY_CHECKPOINT):
        assert time.time() < deadline
        time.sleep(0.05)
    late.set()
    z1_t.join(60)
    assert "change apply has already started" in str(z1.get("error")), z1
    app_t.join(60)
    assert "error" not in app, app
    assert "a load unit renewed its lease lately; waiting" in caplog.text  # unit 1's zombie held a live lease
