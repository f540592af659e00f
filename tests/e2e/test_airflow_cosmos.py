"""DynamoDB -> Cosmos DB for NoSQL end to end on a real Airflow scheduler, live writes during the run.

The result is checked by tests/independent_cosmos.py: the documented mapping rules written out without any turnout
code, reading DynamoDB with boto3 and Cosmos with azure-cosmos, the mapping settings read from the route's YAML spec
with plain yaml. Besides the workload's items, an item with every id escape, reserved attribute names and numbers on
both sides of exactness goes through the export and load, and another through the change stream and the apply."""

from __future__ import annotations

import pytest
import yaml

import demo
import independent_cosmos as ic
import workload

pytestmark = [pytest.mark.server, pytest.mark.airflow]

LIVE_KEY = {"pk": {"S": "live?/#%|"}, "sk": {"S": "\\"}}
LIVE_ID = "live%3F%2F%23%25%7C|%5C"  # written out by hand


def test_live_migration_to_cosmos_on_a_real_scheduler(route_migration):
    m = route_migration(items=2000, writer_rate=30, route="dynamodb-cosmos")
    src_ep = m.eps["source"]["endpoint"]
    src = workload.client(src_ep)
    src.put_item(TableName=demo.TABLE, Item=ic.TRICKY)  # before the run: exported and loaded
    live_put: list[str] = []

    def tick(states, run_id):
        # once the apply runs (the load is done), the same shapes again as a live change: captured, then applied
        if not live_put and "running" in states.get("apply", []):
            src.put_item(TableName=demo.TABLE, Item={**ic.TRICKY, **LIVE_KEY})
            live_put.append(run_id)

    res = m.run_to_end(timeout=900, on_tick=tick)
    assert res["state"] == "success", res
    assert live_put, "the apply task was never seen running"
    assert res["writer"]["delete"] > 0 and res["writer"]["put_again"] > 0
    rep = m.staged("reports/cutover.json")
    assert rep["validation"]["ok"] and rep["changes_applied"] > 0
    assert m.af.xcom(m.dag_id, res["run_id"], "preflight")["target"]["partition_key"] == ["/pk"]

    target = yaml.safe_load((demo.ROOT / "dags" / "specs" / f"{m.name}.yaml").read_text())["target"]
    mapping = {"id_template": target["id_template"], "partition_key": tuple(target["partition_key"]),
               "number_policy": target.get("number_policy", "string"),
               "reserved_prefix": target.get("reserved_prefix", "ddb_")}
    cos = m.eps["cosmos"]
    cmp = ic.full_compare(src_ep, demo.TABLE, cos["endpoint"], cos["key"], target["database"], target["container"],
                          point_reads=40, **mapping)
    assert cmp["differences"] == 0 and cmp["source"] == cmp["target"] >= 2002 - res["writer"]["delete"], cmp
    assert cmp["partition_key_paths"] == ["/pk"]
    cont = ic.container(cos["endpoint"], cos["key"], target["database"], target["container"])
    system = ("_rid", "_self", "_etag", "_attachments", "_ts")
    got = {k: v for k, v in cont.read_item(ic.TRICKY_DOC["id"], partition_key=ic.TRICKY_DOC["pk"]).items()
           if k not in system}
    assert got == ic.TRICKY_DOC
    got = {k: v for k, v in cont.read_item(LIVE_ID, partition_key="live?/#%|").items() if k not in system}
    assert got == {**ic.TRICKY_DOC, "id": LIVE_ID, "pk": "live?/#%|", "sk": "\\"}
