"""Validation's drill-down in bounded memory, and a key mapping that merges records, on real servers.

- Many differing keys and a small ``validation.max_drill_keys``: the drill-down works in several rounds, none
  holding more keys than the budget, and still names every differing key (DynamoDB Local on both sides).
- Two MySQL rows, of two tables whose key templates differ in shape (so preflight lets them pass) but still
  overlap (retail ITEM#{code} / STOCK, wholesale ITEM#{code} / {tier} with tier = 'STOCK'), render the same target
  key (MariaDB source, DynamoDB Local target): the target holds one item for two rows; validation is not OK and
  names both rows and the key, even though every target item equals the transform of *a* source row.
"""

from __future__ import annotations

import logging
import os

import pytest

import workload
import workload_mysql as wm
from test_engine_dynamodb import bulk_copy, ctx_for, spec_for, uniq
from test_engine_mysql import ctx_for as mysql_ctx, sql
from turnout.errors import ValidationFailed
from turnout.phases.validation import validate
from turnout.spec import parse_spec

pytestmark = pytest.mark.server


def test_drill_down_in_rounds_within_the_key_budget_finds_every_difference(stack, tmp_path):
    table = uniq("drill")
    src = workload.client(stack["source"]["endpoint"])
    workload.create_table(src, table, stream=True, gsi=False)
    items = [workload.make_item(i) for i in range(400)]
    for it in items:
        src.put_item(TableName=table, Item=it)
    spec = spec_for(table, tmp_path / "staging")
    spec = spec.model_copy(update={"validation": spec.validation.model_copy(update={"max_drill_keys": 40})})
    ctx = ctx_for(stack, spec)
    assert bulk_copy(ctx) == 400
    tgt = workload.client(stack["target"]["endpoint"])
    gone = items[::4]  # 100 items missing on the target, spread over every bucket
    for it in gone:
        tgt.delete_item(TableName=f"{table}_copy", Key={"pk": it["pk"], "sk": it["sk"]})
    with pytest.raises(ValidationFailed, match="100 keys differ"):
        validate(ctx, final=True, recheck_wait=0)
    r = ctx.staging.get_json("reports/validation-latest.json")
    assert r["missing"] == 100 and r["differences"] == 100 and not r["counts_equal"]
    assert r["drill_rounds"] >= 100 / 40 and r["drill_keys_max"] <= 40, r
    # every missing item named (the report lists up to max_reported_keys)
    named = {k["key"] for k in r["differing_keys"]}
    assert len(named) == 100 and all(it["sk"]["S"] in " ".join(named) for it in gone)


def test_two_rows_one_target_key_is_not_ok_and_names_both(stack, tmp_path):
    db = uniq("dup")
    wm.create_database(stack["mariadb"], db)
    sql(stack, ["CREATE TABLE retail (code VARCHAR(16) PRIMARY KEY, qty INT NOT NULL)",
                "CREATE TABLE wholesale (code VARCHAR(16) PRIMARY KEY, tier VARCHAR(8) NOT NULL, qty INT NOT NULL)",
                "INSERT INTO retail VALUES ('abcd', 1), ('xyz1', 3)",
                "INSERT INTO wholesale VALUES ('abcd', 'STOCK', 20), ('qq', 'BULK', 7)"], db)
    os.environ["TURNOUT_STAGING"] = str(tmp_path / "staging")
    spec = parse_spec(f"""\
name: {uniq("it_dup")}
source: {{kind: mysql, conn_id: m, database: {db}, server_id: 4390}}
target: {{kind: dynamodb, conn_id: t, table: {uniq("dupt")}, key: {{partition: PK, sort: SK}}}}
mapping:
  tables:
    retail: {{partition_key: "ITEM#{{code}}", sort_key: "STOCK"}}
    wholesale: {{partition_key: "ITEM#{{code}}", sort_key: "{{tier}}"}}
staging: {{url: '{tmp_path / "staging"}'}}
validation: {{buckets: 8, recheck_rounds: 1, recheck_wait_seconds: 0}}
""")
    ctx = mysql_ctx(stack, spec)
    bulk_copy(ctx)
    with pytest.raises(ValidationFailed, match="more than one source record") as failed:
        validate(ctx, final=True)
    msg = str(failed.value)
    assert "ITEM#abcd" in msg and "retail" in msg and "wholesale" in msg, msg
    r = ctx.staging.get_json("reports/validation-latest.json")
    assert r["duplicates"] == 1 and r["source_count"] == 4 and r["target_count"] == 3 and not r["ok"]
    [d] = r["duplicate_keys"]
    assert len(d["source_keys"]) == 2 and "ITEM#abcd" in d["key"], d
    logging.getLogger("test").info("reported: %s", d)
