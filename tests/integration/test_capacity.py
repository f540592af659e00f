"""Write budgets in DynamoDB's own capacity units, through the stack's throttle proxy in front of DynamoDB Local
(scripts/throttle_proxy.py counts the WCU it admits by DynamoDB's documented rule, independently of Turnout):

- the budget (``rate_limits.write_units_per_second``) holds across two load tasks running at once: what the
  proxy admitted never exceeds the budget over the run (plus the one second's worth each bucket starts with);
- with ``adaptive: true`` the load backs off when the proxy's limit is lowered under it mid-run and settles near
  the new limit: far fewer throttled requests than the same load with a fixed rate.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

import workload
from test_engine_dynamodb import spec_for, uniq
from test_throttle_proxy import _proxy
from turnout import phases
from turnout.adapters.dynamodb import DynamoDBConfig
from turnout.runtime import make_context

pytestmark = pytest.mark.server


def _source(stack, n: int) -> str:
    """n items of about 900 bytes: one WCU each by DynamoDB's rule."""
    table = uniq("cap")
    ep = stack["source"]["endpoint"]
    c = workload.client(ep)
    workload.create_table(c, table)
    for lo in range(0, n, 25):
        reqs = [{"PutRequest": {"Item": {"pk": {"S": f"p{i % 50}"}, "sk": {"S": f"s{i:06d}"}, "kind": {"S": "order"},
                                         "pad": {"S": "z" * 880}}}} for i in range(lo, min(lo + 25, n))]
        while reqs:
            reqs = c.batch_write_item(RequestItems={table: reqs}).get("UnprocessedItems", {}).get(table, [])
    return table


def _ctx(stack, table, staging, rate_limits: str, segments: int = 2, tasks: int = 2):
    spec = spec_for(table, staging, extra=f"rate_limits: {rate_limits}\n")
    spec = spec.model_copy(update={
        "export": spec.export.model_copy(update={"segments": segments}),
        "load": spec.load.model_copy(update={"max_tasks": tasks})})
    src = DynamoDBConfig(endpoint_url=stack["source"]["endpoint"], aws_access_key_id="l", aws_secret_access_key="l")
    tgt = DynamoDBConfig(endpoint_url=stack["throttle_proxy"]["endpoint"], aws_access_key_id="l",
                         aws_secret_access_key="l")
    return spec, src, tgt


def _prepare(stack, tmp_path, n, rate_limits, segments=2, tasks=2):
    table = _source(stack, n)
    spec, src, tgt = _ctx(stack, table, tmp_path / "staging", rate_limits, segments, tasks)
    ctx = make_context(spec, src, tgt, log=logging.getLogger("turnout.test"))
    phases.preflight(ctx)  # creates the target table through the proxy (not a capacity-limited call)
    phases.start_cdc(ctx)
    for seg in phases.plan_export(ctx):
        phases.export_segment(ctx, seg)
    units = phases.plan_load(ctx)
    return spec, src, tgt, units


def test_the_write_budget_in_units_holds_across_two_load_tasks(stack, tmp_path):
    budget = 150.0
    spec, src, tgt, units = _prepare(stack, tmp_path, 1200, f"{{write_units_per_second: {budget}, parallel_tasks: 2}}")
    assert len(units) == 2
    _proxy(stack, "/_proxy/config", {"latency_ms": 0, "wcu": 0})
    _proxy(stack, "/_proxy/reset", {})
    out: dict = {}

    def run(u):  # each load task with its own context and clients, as on two workers
        c = make_context(spec, src, tgt, log=logging.getLogger("turnout.test"))
        out[u] = phases.load_chunk(c, u)

    t0 = time.time()
    threads = [threading.Thread(target=run, args=(u,)) for u in units]
    [t.start() for t in threads]
    [t.join(300) for t in threads]
    elapsed = time.time() - t0
    assert sum(o["written"] for o in out.values()) == 1200, out
    s = _proxy(stack, "/_proxy/stats")
    assert s["totals"]["wcu"] == 1200.0, s["totals"]
    # each task's bucket holds at most one second of its share to start with, then refills at its share
    bound = budget * elapsed + budget + 2 * 25
    print(f"admitted {s['totals']['wcu']} WCU in {elapsed:.1f} s = {s['totals']['wcu'] / elapsed:.0f}/s; budget "
          f"{budget}/s; bound {bound:.0f}")
    assert s["totals"]["wcu"] <= bound
    per_second = sorted(v["wcu"] for v in s["per_second"].values())
    assert per_second[len(per_second) // 2] <= budget + 2 * 25, per_second  # a typical second: within the budget


def _lowered_run(stack, tmp_path, adaptive: bool) -> dict:
    spec, src, tgt, units = _prepare(stack, tmp_path / ("a" if adaptive else "f"), 1400,
                                     f"{{write_units_per_second: 400, parallel_tasks: 1, adaptive: {str(adaptive).lower()}}}",
                                     segments=1, tasks=1)
    _proxy(stack, "/_proxy/config", {"latency_ms": 0, "wcu": 400})
    _proxy(stack, "/_proxy/reset", {})
    ctx = make_context(spec, src, tgt, log=logging.getLogger("turnout.test"))
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(phases.load_chunk(ctx, units[0])))
    t.start()
    deadline = time.time() + 120
    while _proxy(stack, "/_proxy/stats")["totals"]["wcu"] < 300:  # under way at the first limit
        assert time.time() < deadline
        time.sleep(0.1)
    lowered = _proxy(stack, "/_proxy/stats")["totals"]
    _proxy(stack, "/_proxy/config", {"wcu": 80})  # the table's capacity drops under the load's budget
    t.join(300)
    s = _proxy(stack, "/_proxy/stats")["totals"]
    _proxy(stack, "/_proxy/config", {"wcu": 0})
    assert box.get("written") == 1400, box
    return {"throttled_after": s["throttled"] - lowered["throttled"], "requests_after": s["requests"] - lowered["requests"],
            "unit_rate": box.get("unit_rate"), "cuts": box.get("unit_cuts")}


def test_the_adaptive_rate_settles_under_a_lowered_limit(stack, tmp_path):
    adaptive = _lowered_run(stack, tmp_path, adaptive=True)
    fixed = _lowered_run(stack, tmp_path, adaptive=False)
    print(f"after the limit went from 400 to 80 WCU/s: adaptive {adaptive}, fixed rate {fixed}")
    assert adaptive["unit_rate"] < 400 and fixed["unit_rate"] == 400  # it came down; the fixed one did not
    assert adaptive["unit_rate"] <= 80 * 1.5, adaptive  # near the new limit (AIMD probes a little above it)
    assert adaptive["throttled_after"] * 2 < fixed["throttled_after"], (adaptive, fixed)
