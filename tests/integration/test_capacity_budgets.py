"""Budgets in the databases' own units, through the stack's throttle proxy in front of DynamoDB Local
(scripts/throttle_proxy.py counts what it admits by DynamoDB's documented rules, independently of Turnout):

- a 400 KB item costs 400 WCU, not one item: the load's accounting and the proxy agree with the rule written here;
- ``source_read_percent`` reads the source table's provisioned RCU from DescribeTable at preflight and the export
  stays within that share of it (what the proxy admitted over the run);
- ``target_write_percent`` does the same with the target's WCU;
- a percentage of a capacity the table does not report (on-demand, no warm throughput) is refused at preflight,
  naming the key and the fix.

Expected sizes here follow DynamoDB's rule for string attributes only (name bytes + UTF-8 value bytes), so they
need nothing from turnout.
"""

from __future__ import annotations

import logging
import math
import time

import pytest

import workload
from test_engine_dynamodb import spec_for, uniq
from test_throttle_proxy import _proxy
from turnout import layout, phases, state
from turnout.adapters.dynamodb import DynamoDBConfig
from turnout.errors import PreflightError
from turnout.runtime import make_context

pytestmark = pytest.mark.server


def _cfg(endpoint: str) -> DynamoDBConfig:
    return DynamoDBConfig(endpoint_url=endpoint, aws_access_key_id="l", aws_secret_access_key="l")


def _table(c, name: str, rcu: int = 0, wcu: int = 0, stream: bool = True) -> None:
    kw: dict = {"TableName": name,
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "S"}]}
    if rcu or wcu:
        kw.update(BillingMode="PROVISIONED", ProvisionedThroughput={"ReadCapacityUnits": rcu or 1,
                                                                      "WriteCapacityUnits": wcu or 1})
    else:
        kw["BillingMode"] = "PAY_PER_REQUEST"
    if stream:
        kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    c.create_table(**kw)


def _fill(c, table: str, pads: list[int]) -> list[int]:
    """Items with a ``pad`` string of each given length; returns each item's size by DynamoDB's rule."""
    sizes = []
    for lo in range(0, len(pads), 25):
        reqs = []
        for i in range(lo, min(lo + 25, len(pads))):
            item = {"pk": f"p{i % 40}", "sk": f"s{i:06d}", "kind": "order", "pad": "z" * pads[i]}
            sizes.append(sum(len(k.encode()) + len(v.encode()) for k, v in item.items()))
            reqs.append({"PutRequest": {"Item": {k: {"S": v} for k, v in item.items()}}})
        while reqs:
            reqs = c.batch_write_item(RequestItems={table: reqs}).get("UnprocessedItems", {}).get(table, [])
    return sizes


def _ctx(spec, src: str, tgt: str):
    return make_context(spec, _cfg(src), _cfg(tgt), log=logging.getLogger("turnout.test"))


def _spec(table, tmp_path, rate_limits: str, segments: int = 2, tasks: int = 2):
    spec = spec_for(table, tmp_path / "staging", extra=f"rate_limits: {rate_limits}\n")
    return spec.model_copy(update={"export": spec.export.model_copy(update={"segments": segments}),
                                   "load": spec.load.model_copy(update={"max_tasks": tasks})})


@pytest.fixture()
def proxy(stack):
    _proxy(stack, "/_proxy/config", {"latency_ms": 0, "wcu": 0, "rcu": 0})
    _proxy(stack, "/_proxy/reset", {})
    yield stack["throttle_proxy"]["endpoint"]
    _proxy(stack, "/_proxy/config", {"latency_ms": 0, "wcu": 0, "rcu": 0})


def test_a_400_kb_item_costs_400_write_units(stack, proxy, tmp_path):
    table = uniq("wcu")
    c = workload.client(stack["source"]["endpoint"])
    _table(c, table)
    near_max = 400 * 1024 - 60  # the whole item stays under DynamoDB's 400 KB limit
    sizes = _fill(c, table, [near_max, 100, 900, 1100, 3000])
    expected = sum(math.ceil(s / 1024) for s in sizes)
    assert math.ceil(sizes[0] / 1024) == 400 and expected == 400 + 1 + 1 + 2 + 3
    spec = _spec(table, tmp_path, "{write_units_per_second: 2000, parallel_tasks: 1}", segments=1, tasks=1)
    ctx = _ctx(spec, stack["source"]["endpoint"], proxy)
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    for seg in phases.plan_export(ctx):
        phases.export_segment(ctx, seg)
    _proxy(stack, "/_proxy/reset", {})
    out = [phases.load_chunk(ctx, u) for u in phases.plan_load(ctx)]
    assert sum(o["written"] for o in out) == 5
    assert _proxy(stack, "/_proxy/stats")["totals"]["wcu"] == expected  # what the server-side rule charged
    assert ctx.sink.write_units([{k: {"S": "z" * near_max} for k in ("p",)}]) >= 400  # one item, 400 units


def test_source_read_percent_holds_the_export_to_its_share_of_provisioned_reads(stack, proxy, tmp_path):
    table = uniq("rcu")
    c = workload.client(stack["target"]["endpoint"])  # the source table lives behind the proxy
    rcu = 200
    _table(c, table, rcu=rcu, wcu=50)
    sizes = _fill(c, table, [900] * 2400)  # ~2.3 MB: ~290 RCU for an eventually consistent scan
    spec = _spec(table, tmp_path, "{source_read_percent: 25, parallel_tasks: 2}")
    ctx = _ctx(spec, proxy, stack["target"]["endpoint"])
    pre = phases.preflight(ctx)
    budget = rcu * 0.25
    assert pre["budgets"]["read_units_per_second"] == budget, pre["budgets"]
    assert "25 % of 200" in pre["budgets"]["read_from"] and "provisioned" in pre["budgets"]["read_from"]
    assert state.load(ctx.staging, layout.PREFLIGHT)["capacity"]["source"]["read_units_per_second"] == rcu
    phases.start_cdc(ctx)
    _proxy(stack, "/_proxy/config", {"rcu": rcu})  # the table's real limit: the export must never reach it
    _proxy(stack, "/_proxy/reset", {})
    t0 = time.time()
    # one segment after the other, as when only one export task runs: a task takes the whole budget once it has
    # seen (in staging, after its first look) that it is alone, not its static half
    outs = [phases.export_segment(_ctx(spec, proxy, stack["target"]["endpoint"]), s) for s in phases.plan_export(ctx)]
    elapsed = time.time() - t0
    items = sum(o["items"] for o in outs)
    shares = [o["read_units_per_second"] for o in outs]
    assert set(shares) <= {budget / 2, budget} and budget in shares, outs  # a task shorter than a look keeps half
    holders = [k for k in ctx.staging.list(layout.budget_prefix("read")) if "/done/" not in k]
    assert not holders and len(ctx.staging.list(layout.budget_done_prefix("read"))) == 2  # each left, finished
    s = _proxy(stack, "/_proxy/stats")["totals"]
    assert items == len(sizes)
    full = math.ceil(sum(sizes) / 4096) * 0.5
    print(f"read {s['rcu']} RCU (a single full scan: {full}) in {elapsed:.1f} s = {s['rcu'] / elapsed:.0f}/s; "
          f"budget {budget}/s; throttled {s['throttled']}")
    assert s["rcu"] >= full * 0.9  # it did read the table, in pages
    # each task's bucket starts with one second of its share, and a page is charged after it was read
    assert s["rcu"] <= budget * elapsed + budget + 2 * 15
    assert s["throttled"] == 0


def test_target_write_percent_holds_the_load_to_its_share_of_provisioned_writes(stack, proxy, tmp_path):
    table = uniq("tw")
    src = workload.client(stack["source"]["endpoint"])
    _table(src, table)
    _fill(src, table, [900] * 900)  # one WCU each
    wcu = 240
    _table(workload.client(stack["target"]["endpoint"]), f"{table}_copy", rcu=10, wcu=wcu, stream=False)
    spec = _spec(table, tmp_path, "{target_write_percent: 50, parallel_tasks: 2}")
    ctx = _ctx(spec, stack["source"]["endpoint"], proxy)
    pre = phases.preflight(ctx)
    assert pre["budgets"]["write_units_per_second"] == wcu / 2, pre["budgets"]
    phases.start_cdc(ctx)
    for seg in phases.plan_export(ctx):
        phases.export_segment(ctx, seg)
    units = phases.plan_load(ctx)
    _proxy(stack, "/_proxy/config", {"wcu": wcu})
    _proxy(stack, "/_proxy/reset", {})
    t0 = time.time()
    written = sum(phases.load_chunk(_ctx(spec, stack["source"]["endpoint"], proxy), u)["written"] for u in units)
    elapsed = time.time() - t0
    s = _proxy(stack, "/_proxy/stats")["totals"]
    assert written == 900 and s["wcu"] == 900.0
    assert s["wcu"] <= wcu / 2 * elapsed + wcu / 2 + 2 * 25, (s, elapsed)
    assert s["throttled"] == 0
    # the achieved units, the budget and the throttles reach the status (the view) and the report
    from turnout.report import build_report
    from turnout.status import migration_status
    from turnout_airflow.ui_cells import progress_cell

    st = migration_status(ctx.staging)
    assert st["load"]["write_units"] == 900 and st["load"]["throttled"] == 0
    assert st["preflight"]["budgets"]["write_units_per_second"] == wcu / 2
    cell = progress_cell(st, None, time.time())
    assert f'data-budget="{wcu / 2}"' in cell and "units/s of 120.0 budget" in cell, cell
    rep = build_report(ctx.staging, spec, "test")
    assert rep["counts"]["load"]["write_units"] == 900 and rep["capacity"]["budgets"]["write_units_per_second"] == 120
    assert rep["capacity"]["plan"]["recommendation"]


def test_a_percentage_of_an_unreported_capacity_is_refused_at_preflight(stack, tmp_path):
    table = uniq("od")
    src = workload.client(stack["source"]["endpoint"])
    _table(src, table)
    _table(workload.client(stack["target"]["endpoint"]), f"{table}_copy", stream=False)  # on-demand, no warm
    spec = _spec(table, tmp_path, "{target_write_percent: 50}")
    ctx = _ctx(spec, stack["source"]["endpoint"], stack["target"]["endpoint"])
    with pytest.raises(PreflightError) as exc:
        phases.preflight(ctx)
    msg = str(exc.value)
    assert "target_write_percent" in msg and "write_units_per_second" in msg and "on-demand" in msg, msg
    assert state.load(ctx.staging, layout.PREFLIGHT)["status"] == "NO-GO"


def test_the_dry_run_prints_the_capacity_and_cost_plan(stack, tmp_path, caplog):
    table = uniq("plan")
    src = workload.client(stack["source"]["endpoint"])
    _table(src, table, rcu=400, wcu=100)
    sizes = _fill(src, table, [3000] * 300)  # 3 KB: one RCU per strongly consistent read, 3 WCU per write
    spec = _spec(table, tmp_path, "{source_read_percent: 10}")
    spec = spec.model_copy(update={"plan": spec.plan.model_copy(update={
        "source_writes_per_second": 50, "prices": {"dynamodb_on_demand_write_per_million": 1.0}})})
    ctx = _ctx(spec, stack["source"]["endpoint"], stack["target"]["endpoint"])
    with caplog.at_level(logging.INFO, logger="turnout.test"):
        pre = phases.preflight(ctx, dry_run=True)
    p = pre["plan"]
    printed = "\n".join(r.getMessage() for r in caplog.records if "plan:" in r.getMessage())
    print(printed)
    # per item: 3 WCU by DynamoDB's rule; a scan reads half a unit per started 4 KB of the page
    assert p["write_units_per_item"] == math.ceil(sizes[0] / 1024) == 3
    page = min(200, len(sizes))
    assert p["read_units_per_item"] == pytest.approx(math.ceil(sum(sizes[:page]) / 4096) * 0.5 / page, rel=0.01)
    # the copy is bound by 10 % of 400 RCU: 40 RCU/s over the read units per item
    assert p["copy"]["limited_by"] == "read budget"
    rate = 40 / p["read_units_per_item"]
    assert p["copy"]["items_per_second"] == pytest.approx(rate, rel=0.01)
    assert p["copy"]["hours"] == pytest.approx(300 / rate / 3600, abs=0.01)
    paths = {x["path"]: x for x in p["paths"]}
    assert set(paths) == {"export: scan", "export: native (ExportTableToPointInTime)", "load: batch writes",
                          "load: ImportTable from S3"}
    # the overridden write price: 300 items x 3 WCU at $1 per million, plus same-cloud transfer of the table
    gb = p["size_gb"]
    assert paths["load: batch writes"]["usd"] == pytest.approx(300 * 3 / 1e6 * 1.0 + gb * 0.02, abs=0.01)
    assert p["catch_up"]["verdict"].startswith("no write budget")
    assert p["recommendation"].startswith("export: scan")
    for words in ("plan: copy at", "plan: cost of export: scan", "plan: cost of load: ImportTable",
                  "plan: recommendation:"):
        assert words in printed, printed
    assert not ctx.sink.exists()  # a dry run creates nothing


def test_an_unknown_price_is_refused_at_spec_load(tmp_path):
    from turnout.spec import SpecError

    with pytest.raises((SpecError, ValueError)) as exc:
        spec_for("t", tmp_path, extra="plan: {prices: {dynamodb_write_per_millon: 1}}\n")
    assert "dynamodb_write_per_millon" in str(exc.value) and "dynamodb_on_demand_write_per_million" in str(exc.value)


def test_writes_are_spread_over_every_listed_node_endpoint(stack, proxy, tmp_path):
    """target.endpoints (several Alternator nodes): BatchWriteItem round robin over them. Both endpoints here lead
    to the same DynamoDB Local, one through the proxy, which counts the requests it saw."""
    table = uniq("nodes")
    src = workload.client(stack["source"]["endpoint"])
    _table(src, table)
    _fill(src, table, [200] * 1000)
    spec = _spec(table, tmp_path, "{parallel_tasks: 1}", segments=1, tasks=1)
    spec = spec.model_copy(update={"target": spec.target.model_copy(update={
        "endpoints": [stack["target"]["endpoint"], proxy]})})
    ctx = _ctx(spec, stack["source"]["endpoint"], stack["target"]["endpoint"])
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    for seg in phases.plan_export(ctx):
        phases.export_segment(ctx, seg)
    _proxy(stack, "/_proxy/reset", {})
    written = sum(phases.load_chunk(ctx, u)["written"] for u in phases.plan_load(ctx))
    s = _proxy(stack, "/_proxy/stats")["totals"]
    assert written == 1000 and s["wcu"] == pytest.approx(500, abs=25)  # half of the 40 batches of 25 one-WCU items
    assert workload.client(stack["target"]["endpoint"]).scan(TableName=f"{table}_copy", Select="COUNT")["Count"] == 1000


def test_batches_over_25_items_are_refused_against_aws(tmp_path):
    spec = spec_for("t", tmp_path, extra="")
    spec = spec.model_copy(update={"target": spec.target.model_copy(update={"batch_items": 100})})
    ctx = make_context(spec, DynamoDBConfig(), DynamoDBConfig(region_name="eu-west-1"),
                       log=logging.getLogger("turnout.test"))
    with pytest.raises(PreflightError, match="batch_items: 100.*at most 25"):
        ctx.sink


def test_target_write_percent_of_a_cosmos_container_reads_its_offer(stack, tmp_path):
    """The container Turnout creates with ``throughput: 1000`` RU/s: 50 % of its offer, read back from the server
    (the offers API), is the write budget, in RU as each response reports them."""
    from test_engine_cosmos import cosmos_spec, ctx_for

    table = uniq("cosoffer")
    src = workload.client(stack["source"]["endpoint"])
    _table(src, table)
    _fill(src, table, [100] * 5)
    spec = cosmos_spec(table, tmp_path / "staging", extra_target="  throughput: 1000\n")
    spec = spec.model_copy(update={"rate_limits": spec.rate_limits.model_copy(update={"target_write_percent": 50})})
    ctx = ctx_for(stack, spec)
    pre = phases.preflight(ctx)
    assert pre["capacity"]["target"] == {"read_units_per_second": 1000.0, "write_units_per_second": 1000.0,
                                         "unit": "RU", "basis": "offer"}, pre["capacity"]
    assert pre["budgets"]["write_units_per_second"] == 500.0 and "50 % of 1000 RU offer" in pre["budgets"]["write_from"]
