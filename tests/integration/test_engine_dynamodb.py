"""The engine's phases against real servers: DynamoDB Local (source and target) and moto (S3).

No Airflow here: the phases are driven in-process, the capture and the apply in threads, exactly as
the operators call them. The Airflow run of the same pipeline is in tests/e2e/.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import threading
import time
import uuid

import boto3
import pytest

import workload
from turnout import phases
from turnout.adapters.dynamodb import DynamoDBConfig
from turnout.codec import item_to_json
from turnout.errors import DeadLetterError, PreflightError
from turnout.runtime import make_context
from turnout.spec import parse_spec
from turnout.phases import validate

pytestmark = pytest.mark.server


def spec_for(table, staging, extra=""):
    return parse_spec(f"""\
name: it_{table}
source: {{kind: dynamodb, conn_id: s, table: {table}, enable_stream: true}}
target: {{kind: dynamodb, conn_id: t, table: {table}_copy}}
staging: {{url: '{staging}'}}
export: {{segments: 3, chunk_items: 500}}
load: {{max_tasks: 4}}
apply: {{lanes: 4, poll_interval_seconds: 0.2}}
capture: {{poll_interval_seconds: 0.2, heartbeat_seconds: 0.5}}
catch_up: {{lag_threshold_seconds: 90, stable_seconds: 2}}
cutover: {{quiet_seconds: 2, drain_timeout_seconds: 120}}
validation: {{buckets: 32, recheck_rounds: 8, recheck_wait_seconds: 1}}
mapping: {{required: [pk, sk, kind]}}
{extra}""")


def ctx_for(stack, spec):
    src = DynamoDBConfig(endpoint_url=stack["source"]["endpoint"], aws_access_key_id="l", aws_secret_access_key="l")
    tgt = DynamoDBConfig(endpoint_url=stack["target"]["endpoint"], aws_access_key_id="l", aws_secret_access_key="l")
    return make_context(spec, src, tgt, log=logging.getLogger("turnout.test"))


def uniq(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def run_bg(fn, *a, **kw):
    box = {}

    def go():
        try:
            box["result"] = fn(*a, **kw)
        except BaseException as exc:  # surfaced by the test
            box["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, box


@contextlib.contextmanager
def killed_after_changelog_write(ctx):
    """A SIGKILL stand-in: the capture dies right after writing change-log file 0, before its checkpoint."""
    real_put = ctx.staging.put_if

    def dying_put(key, data, etag):
        if key == "capture/checkpoint.json" and json.loads(data).get("next_file", 0) >= 1:
            raise KeyboardInterrupt("SIGKILL right after the change log file was written")
        return real_put(key, data, etag)

    ctx.staging.put_if = dying_put
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        ctx.staging.put_if = real_put


def live_run(ctx, writer) -> dict:
    """After start_cdc: capture in the background, the writer on, export, load, apply, catch up, validate under
    live writes, stop the writer (the freeze), cut over. Returns what each step said."""
    cap_t, cap = run_bg(phases.run_capture, ctx)
    writer.start()
    exported = sum(phases.export_segment(ctx, u)["items"] for u in phases.plan_export(ctx))
    loaded = sum(phases.load_chunk(ctx, u)["written"] for u in phases.plan_load(ctx))
    app_t, app = run_bg(phases.run_apply, ctx)
    status = wait_caught_up(ctx)
    mid = validate(ctx)  # under live writes: first-pass differences are rechecked until they settle
    counts = writer.stop()
    summary = phases.cutover(ctx, approved_by="test")
    cap_t.join(60)
    app_t.join(60)
    assert "error" not in cap and "error" not in app, (cap, app)
    return {"exported": exported, "loaded": loaded, "caught_up": status, "mid": mid, "writer": counts,
            "cutover": summary}


def bulk_copy(ctx) -> int:
    """preflight, start_cdc, every export segment and every load unit, in-process; returns items written."""
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    for seg in phases.plan_export(ctx):
        phases.export_segment(ctx, seg)
    return sum(phases.load_chunk(ctx, u)["written"] for u in phases.plan_load(ctx))


def wait_caught_up(ctx, timeout: float = 180) -> dict:
    state, deadline = {}, time.time() + timeout
    while True:
        done, status = phases.catch_up_check(ctx, state)
        if done:
            return status
        assert time.time() < deadline, status
        time.sleep(0.5)


def capture_until(ctx, records: int, timeout: float = 180) -> dict:
    """Run the capture in short rounds (each resumes from its checkpoint) until the change log holds at least
    `records` changes or a generous deadline passes: no fixed window that a busy machine can outlast."""
    deadline = time.time() + timeout
    while True:
        out = phases.run_capture(ctx, max_seconds=1)
        if out["records"] >= records or time.time() > deadline:
            return out


def test_stack_binds_loopback_only(stack):
    """What the server processes really listen on (psutil, the process and its children), not the URLs the stack
    writes: every listening socket is on a loopback address, and the port refuses connections on every other
    address of this machine."""
    import ipaddress
    import socket

    import psutil

    assert {"source", "target", "s3", "cosmos", "mariadb", "mongo_source", "mongo_target"} <= set(stack)
    others = sorted({a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                     if a.family in (socket.AF_INET, socket.AF_INET6)
                     and not ipaddress.ip_address(a.address.split("%")[0]).is_loopback
                     and not ipaddress.ip_address(a.address.split("%")[0]).is_link_local})
    for name, ep in stack.items():
        root = psutil.Process(ep["pid"])
        procs = [root, *root.children(recursive=True)]
        listening = [c for p in procs for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert ep["port"] in {c.laddr.port for c in listening}, (name, ep, listening)
        wide = [c.laddr for c in listening if not ipaddress.ip_address(c.laddr.ip).is_loopback]
        assert not wide, (name, wide)  # e.g. 0.0.0.0 or :: would listen on every interface
        for addr in others:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                assert s.connect_ex((addr, ep["port"])) != 0, (name, addr, ep["port"])


def test_live_migration_ends_with_zero_differences(stack, tmp_path):
    table = uniq("orders")
    src = workload.client(stack["source"]["endpoint"])
    workload.create_table(src, table)
    workload.seed(stack["source"]["endpoint"], table, 3000)
    ctx = ctx_for(stack, spec_for(table, tmp_path / "staging"))

    pre = phases.preflight(ctx)
    assert pre["status"] == "GO" and pre["target"]["created"] and pre["source_key"] == ["pk", "sk"]
    writer = workload.LiveWriter(stack["source"]["endpoint"], table, 3000, rate=40)
    cdc = phases.start_cdc(ctx)
    assert cdc["segments"] == 3
    cap_t, cap = run_bg(phases.run_capture, ctx)
    writer.start()
    exported = sum(phases.export_segment(ctx, seg)["items"] for seg in phases.plan_export(ctx))
    units = phases.plan_load(ctx)
    loaded = sum(phases.load_chunk(ctx, u)["written"] for u in units)
    # every exported item loaded once; a seeded item is missing from the export only if the writer deleted it
    assert loaded == exported >= 3000 - writer.counts["delete"]
    app_t, app = run_bg(phases.run_apply, ctx)
    wait_caught_up(ctx)
    mid = validate(ctx)  # under live writes: differences are rechecked until they settle
    assert mid["ok"]
    counts = writer.stop()
    assert counts["delete"] > 0 and counts["update"] > 0 and counts["put_again"] > 0
    result = phases.cutover(ctx, approved_by="test")
    cap_t.join(30), app_t.join(30)
    assert "error" not in cap and "error" not in app, (cap, app)
    assert result["validation"]["ok"] and result["changes_applied"] > 0
    cmp = workload.full_compare(stack["source"]["endpoint"], table, stack["target"]["endpoint"], f"{table}_copy")
    assert cmp["differences"] == 0, cmp
    # the target has the source's GSI, and the migration is now done: a re-run is a no-op
    tgt = workload.client(stack["target"]["endpoint"]).describe_table(TableName=f"{table}_copy")["Table"]
    assert [g["IndexName"] for g in tgt["GlobalSecondaryIndexes"]] == ["by_kind"]
    assert phases.preflight(ctx)["status"] == "cutover_done"


def test_export_resumes_mid_segment_without_duplicates(stack, tmp_path):
    table = uniq("resume")
    src = workload.client(stack["source"]["endpoint"])
    workload.create_table(src, table, stream=True)
    workload.seed(stack["source"]["endpoint"], table, 1200)
    spec = spec_for(table, tmp_path / "staging", "").model_copy(
        update={"export": spec_for(table, tmp_path).export.model_copy(update={"segments": 1, "chunk_items": 200})})
    ctx = ctx_for(stack, spec)
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    real = ctx.source.read_segment
    pages = {"n": 0}

    def dying(*a, **kw):
        for page in real(*a, **kw):
            pages["n"] += 1
            if pages["n"] == 4:
                raise KeyboardInterrupt("killed")  # like a SIGKILL between pages
            yield page

    ctx.source.read_segment = dying
    with pytest.raises(KeyboardInterrupt):
        phases.export_segment(ctx, 0)
    ck = ctx.staging.get_json("export/seg-00000/checkpoint.json")
    assert 0 < len(ck["chunks"]) and not ck["done"] and ck["resume"]
    ctx.source.read_segment = real
    out = phases.export_segment(ctx, 0)
    keys = [json.dumps([r["pk"], r["sk"]]) for c in ctx.staging.get_json("export/seg-00000/checkpoint.json")["chunks"]
            for r in ctx.staging.iter_jsonl_gz(c["key"])]
    assert out["items"] == 1200 == len(keys) == len(set(keys))
    assert phases.export_segment(ctx, 0)["skipped"]  # a finished segment is never scanned again


def test_item_over_target_limit_goes_to_dead_letters_and_fails(stack, tmp_path):
    table = uniq("big")
    src = workload.client(stack["source"]["endpoint"])
    workload.create_table(src, table, stream=True, gsi=False)
    workload.seed(stack["source"]["endpoint"], table, 60)
    # a target limit of 2 KB: the seeded items are smaller, except one we make big
    src.put_item(TableName=table, Item={**workload.make_item(5), "pad": {"S": "x" * 5000}})
    spec = spec_for(table, tmp_path / "staging", "")
    spec = spec.model_copy(update={"target": spec.target.model_copy(update={"max_item_bytes": 2048})})
    ctx = ctx_for(stack, spec)
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    for s in phases.plan_export(ctx):
        phases.export_segment(ctx, s)
    errors = []
    for u in phases.plan_load(ctx):
        try:
            phases.load_chunk(ctx, u)
        except DeadLetterError as exc:
            errors.append(str(exc))
    assert errors and all("rejected by the target" in e for e in errors)
    rows = [r for dl in ctx.staging.list("deadletter/load/") for r in ctx.staging.iter_jsonl_gz(dl)]
    # item 5 was padded; item 7 carries the workload's ~380 KB binary
    assert sorted(r["record"]["sk"]["S"] for r in rows) == ["order#00000005", "order#00000007"]
    assert all("over the target's limit of 2048" in r["reason"] for r in rows)
    assert workload.client(stack["target"]["endpoint"]).scan(TableName=f"{table}_copy", Select="COUNT")["Count"] == 58
    with pytest.raises(DeadLetterError):
        phases.catch_up_check(ctx, {})  # the run stays red until the dead letters are dealt with
    # the fix: a mapping that drops the oversized attributes; re-running the load re-drives those chunks
    fixed = spec.model_copy(update={"mapping": spec.mapping.model_copy(update={"drop": ["pad", "big"]})})
    ctx2 = ctx_for(stack, fixed)
    out = [phases.load_chunk(ctx2, u) for u in phases.plan_load(ctx2)]
    assert sum(o["chunks"] for o in out) == 2 and sum(o["rejected"] for o in out) == 0  # only the 2 bad chunks
    assert ctx2.staging.list("deadletter/") == []
    assert workload.client(stack["target"]["endpoint"]).scan(TableName=f"{table}_copy", Select="COUNT")["Count"] == 60


def test_stream_off_and_not_allowed_is_a_clear_error(stack, tmp_path):
    table = uniq("nostream")
    workload.create_table(workload.client(stack["source"]["endpoint"]), table, gsi=False)
    spec = spec_for(table, tmp_path / "staging")
    spec = spec.model_copy(update={"source": spec.source.model_copy(update={"enable_stream": False})})
    with pytest.raises(PreflightError, match="Streams is off .* set source.enable_stream: true"):
        phases.preflight(ctx_for(stack, spec))
    with pytest.raises(PreflightError, match="table 'missing_table' not found"):
        bad = spec.model_copy(update={"source": spec.source.model_copy(update={"table": "missing_table"})})
        phases.preflight(ctx_for(stack, bad))


def test_dry_run_preflight_changes_nothing(stack, tmp_path):
    table = uniq("dry")
    workload.create_table(workload.client(stack["source"]["endpoint"]), table, gsi=False)
    ctx = ctx_for(stack, spec_for(table, tmp_path / "staging"))
    out = phases.preflight(ctx, dry_run=True)
    assert out["status"] == "GO" and out["target"]["would_create"]
    assert not ctx.sink.exists()
    assert not ctx.source.describe().stream["enabled"]
    strict = spec_for(table, tmp_path / "staging")
    strict = strict.model_copy(update={"target": strict.target.model_copy(update={"create_if_missing": False})})
    with pytest.raises(PreflightError, match="does not exist and target.create_if_missing is false"):
        phases.preflight(ctx_for(stack, strict))


def test_every_type_round_trips_exactly(stack, tmp_path):
    table = uniq("types")
    src = workload.client(stack["source"]["endpoint"])
    workload.create_table(src, table, stream=True, gsi=False)
    items = [workload.make_item(i) for i in (7, 8, 5007)]  # 7 and 5007 carry ~380 KB binaries
    items.append({"pk": {"S": "🔑/ключ/\u0000?#"}, "sk": {"S": "x"}, "kind": {"S": "odd"}, "n": {"N": "-9.9999999999999999999999999999999999999E+125"},
                  "tiny": {"N": "1E-130"}, "empty_l": {"L": []}, "empty_m": {"M": {}}, "s": {"S": ""}})
    for it in items:
        src.put_item(TableName=table, Item=it)
    ctx = ctx_for(stack, spec_for(table, tmp_path / "staging"))
    bulk_copy(ctx)
    tgt = workload.client(stack["target"]["endpoint"])
    for it in items:
        got = tgt.get_item(TableName=f"{table}_copy", Key={"pk": it["pk"], "sk": it["sk"]})["Item"]
        assert item_to_json(got) == item_to_json(src.get_item(TableName=table, Key={"pk": it["pk"], "sk": it["sk"]})["Item"])
    assert validate(ctx, final=True)["ok"]


def test_validation_names_the_exact_differing_keys(stack, tmp_path):
    table = uniq("diff")
    src = workload.client(stack["source"]["endpoint"])
    workload.create_table(src, table, stream=True, gsi=False)
    workload.seed(stack["source"]["endpoint"], table, 400)
    ctx = ctx_for(stack, spec_for(table, tmp_path / "staging", "").model_copy(update={
        "validation": spec_for(table, tmp_path).validation.model_copy(update={"recheck_rounds": 1,
                                                                              "recheck_wait_seconds": 0})}))
    bulk_copy(ctx)
    tgt = workload.client(stack["target"]["endpoint"])
    k_missing, k_diff = workload.make_item(10), workload.make_item(11)
    tgt.delete_item(TableName=f"{table}_copy", Key={"pk": k_missing["pk"], "sk": k_missing["sk"]})
    tgt.put_item(TableName=f"{table}_copy", Item={**k_diff, "v": {"N": "999"}})
    tgt.put_item(TableName=f"{table}_copy", Item={"pk": {"S": "ghost"}, "sk": {"S": "g"}, "kind": {"S": "x"}})
    with pytest.raises(Exception, match="3 keys differ"):
        validate(ctx, final=True)
    rep = ctx.staging.get_json("reports/validation-latest.json")
    kinds = {d["kind"]: d["key"] for d in rep["differing_keys"]}
    assert set(kinds) == {"missing", "different", "extra"}
    assert "order#00000010" in kinds["missing"] and "order#00000011" in kinds["different"] and "ghost" in kinds["extra"]
    assert rep["differing_buckets_first_pass"] <= 3


def test_s3_staging_and_native_export_reader_on_moto(stack):
    from turnout.adapters.dynamodb.native_export import export_prefix, list_data_files, read_data_file
    from turnout.staging import open_staging

    ep = stack["s3"]["endpoint"]
    s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1", aws_access_key_id="l", aws_secret_access_key="l")
    bucket = uniq("stg").replace("_", "-")
    s3.create_bucket(Bucket=bucket)
    st = open_staging(f"s3://{bucket}/pre", lambda: s3).child("m")
    st.put_json("state/x.json", {"a": 1})
    st.put_jsonl_gz("export/seg-00000/chunk-00000.jsonl.gz", [{"i": 1}])
    assert st.exists("state/x.json") and not st.exists("state/y.json")
    assert st.get_json("state/x.json") == {"a": 1}
    assert st.list("export/") == ["export/seg-00000/chunk-00000.jsonl.gz"]

    # moto's layout: a real ExportTableToPointInTime on moto's DynamoDB
    ddb = boto3.client("dynamodb", endpoint_url=ep, region_name="us-east-1", aws_access_key_id="l",
                       aws_secret_access_key="l")
    t = uniq("exp")
    workload.create_table(ddb, t, gsi=False)
    items = [workload.make_item(i) for i in range(30)]
    for it in items:
        ddb.put_item(TableName=t, Item=it)
    arn = ddb.describe_table(TableName=t)["Table"]["TableArn"]
    ddb.update_continuous_backups(TableName=t, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    exp = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=bucket, S3Prefix="exports",
                                            ExportFormat="DYNAMODB_JSON")["ExportDescription"]
    for _ in range(600):
        if ddb.describe_export(ExportArn=exp["ExportArn"])["ExportDescription"]["ExportStatus"] == "COMPLETED":
            break
        time.sleep(0.2)
    else:
        pytest.fail("the export did not complete within 120 s")
    files = list_data_files(s3, bucket, export_prefix(exp["ExportArn"], "exports", s3, bucket))
    got = [i for f in files for i in read_data_file(s3, bucket, f["key"])]
    assert sorted(item_to_json(i)["sk"]["S"] for i in got) == sorted(i["sk"]["S"] for i in items)

    # AWS's layout: manifest-summary.json -> manifest-files.json -> data files with item counts
    prefix = "aws/AWSDynamoDB/01234567890123-abcdef12/"
    lines = [json.dumps({"Item": item_to_json(i)}) for i in items[:10]]
    s3.put_object(Bucket=bucket, Key=prefix + "data/part1.json.gz", Body=gzip.compress("\n".join(lines).encode()))
    s3.put_object(Bucket=bucket, Key=prefix + "manifest-files.json", Body=json.dumps(
        {"itemCount": 10, "dataFileS3Key": prefix + "data/part1.json.gz"}).encode())
    s3.put_object(Bucket=bucket, Key=prefix + "manifest-summary.json", Body=json.dumps(
        {"outputFormat": "DYNAMODB_JSON", "manifestFilesS3Key": prefix + "manifest-files.json", "itemCount": 10}).encode())
    files = list_data_files(s3, bucket, prefix)
    assert files == [{"key": prefix + "data/part1.json.gz", "items": 10}]
    assert [item_to_json(i) for i in read_data_file(s3, bucket, files[0]["key"])] == [item_to_json(i) for i in items[:10]]


def test_capture_killed_between_file_and_checkpoint_adopts_without_loss_or_duplicates(stack, tmp_path):
    from turnout import changelog

    table = uniq("cap")
    src = workload.client(stack["source"]["endpoint"])
    workload.create_table(src, table, stream=True, gsi=False)
    ctx = ctx_for(stack, spec_for(table, tmp_path / "staging"))
    phases.start_cdc(ctx)
    for i in range(50):
        src.put_item(TableName=table, Item=workload.make_item(i))
    with killed_after_changelog_write(ctx):
        phases.run_capture(ctx, max_seconds=180)  # dies at its first change-log file
    assert changelog.file_numbers(ctx.staging) == [0]
    assert ctx.staging.get_json("capture/checkpoint.json")["next_file"] == 0  # the checkpoint did not move
    for i in range(50, 70):
        src.put_item(TableName=table, Item=workload.make_item(i))
    out = capture_until(ctx_for(stack, ctx.spec), 70)
    origins = [c.origin for _, c in changelog.iter_changes(ctx.staging)]
    assert len(origins) == len(set(origins)) == 70 == out["records"]
    sks = sorted(c.key["sk"]["S"] for _, c in changelog.iter_changes(ctx.staging))
    assert sks == sorted(workload.make_item(i)["sk"]["S"] for i in range(70))
