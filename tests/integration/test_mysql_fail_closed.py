"""The MySQL/MariaDB source refuses what it cannot carry exactly, on the project's real MariaDB (row binlog):

- ``log_bin_compress=ON`` (compressed row events the reader does not decode): preflight NO-GO naming the setting.
- A foreign key with ON DELETE CASCADE / ON UPDATE CASCADE onto a migrated table (InnoDB changes the child rows
  itself, without row events in the binlog): preflight NO-GO naming the constraint, the table and the fix.
  The test first shows the premise on this server: a cascaded delete leaves no row event for the child.
- TRUNCATE of a migrated table mid-migration: the capture stops naming the table and the binlog position, with
  what was captured before it in the change log and nothing after it.
"""

from __future__ import annotations

import pytest

import workload_mysql as wm
from test_engine_mysql import ctx_for, shop_spec, sql, uniq
from turnout import changelog, phases
from turnout.errors import PreflightError

pytestmark = pytest.mark.server


def test_log_bin_compress_is_a_preflight_no_go_naming_the_setting(stack, tmp_path):
    db = uniq("lbc")
    wm.create_database(stack["mariadb"], db)
    ctx = ctx_for(stack, shop_spec(tmp_path, db, uniq("t")))
    sql(stack, ["SET GLOBAL log_bin_compress = ON"])
    try:
        with pytest.raises(PreflightError) as exc:
            phases.preflight(ctx)
    finally:
        sql(stack, ["SET GLOBAL log_bin_compress = OFF"])
    msg = str(exc.value)
    assert "log_bin_compress is ON" in msg and "SET GLOBAL log_bin_compress = OFF" in msg, msg
    assert phases.preflight(ctx_for(stack, ctx.spec))["status"] == "GO"  # and fixed, it passes


def _binlog_rows_for(stack, db, table, since_file, since_pos) -> int:
    """Row events of ``db.table`` in the binlog since a position, read with mysql-replication (not Turnout)."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    ep = stack["mariadb"]
    r = BinLogStreamReader(connection_settings={"host": ep["host"], "port": ep["port"], "user": ep["user"],
                                                "passwd": ep["password"]},
                           server_id=4391, resume_stream=True, log_file=since_file, log_pos=since_pos, blocking=False,
                           only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent], only_schemas=[db])
    n = sum(len(ev.rows) for ev in r if ev.table == table)
    r.close()
    return n


def _no_go(stack, tmp_path, db):
    """(context, preflight's NO-GO message) of the demo spec on ``db``."""
    ctx = ctx_for(stack, shop_spec(tmp_path, db, uniq("t")))
    with pytest.raises(PreflightError) as exc:
        phases.preflight(ctx)
    return ctx, str(exc.value)


def test_foreign_key_cascade_onto_a_migrated_table_is_a_no_go_naming_it(stack, tmp_path):
    db = uniq("fk")
    wm.create_database(stack["mariadb"], db)
    sql(stack, ["ALTER TABLE order_lines ADD CONSTRAINT lines_of_order FOREIGN KEY (order_id) "
                "REFERENCES orders (order_id) ON DELETE CASCADE",
                "ALTER TABLE orders ADD CONSTRAINT orders_of_customer FOREIGN KEY (customer_id) "
                "REFERENCES customers (customer_id) ON DELETE RESTRICT ON UPDATE CASCADE"], db)
    wm.seed(stack["mariadb"], db, 3, orders_per_customer=1, lines_per_order=2)
    # the premise, on this server: the cascaded delete of order_lines is not in the binlog as row events
    f, pos = sql(stack, ["SHOW MASTER STATUS"])[0][0][:2]
    [oid] = sql(stack, ["SELECT MIN(order_id) FROM orders"], db)[0][0]
    sql(stack, [f"DELETE FROM orders WHERE order_id = {oid}"], db)
    assert sql(stack, [f"SELECT COUNT(*) FROM order_lines WHERE order_id = {oid}"], db)[0][0][0] == 0
    assert _binlog_rows_for(stack, db, "orders", f, int(pos)) == 1
    assert _binlog_rows_for(stack, db, "order_lines", f, int(pos)) == 0

    _ctx, msg = _no_go(stack, tmp_path, db)
    assert f"foreign key lines_of_order on {db}.order_lines (-> orders) has ON DELETE CASCADE" in msg, msg
    assert f"foreign key orders_of_customer on {db}.orders (-> customers) has ON UPDATE CASCADE" in msg, msg
    assert "RESTRICT/NO ACTION" in msg and "leave order_lines out of mapping.tables" in msg


def test_truncate_of_a_migrated_table_stops_the_capture_naming_it(stack, tmp_path):
    db = uniq("trunc")
    wm.create_database(stack["mariadb"], db)
    wm.seed(stack["mariadb"], db, 5, orders_per_customer=1, lines_per_order=1)
    ctx = ctx_for(stack, shop_spec(tmp_path, db, uniq("t")))
    phases.preflight(ctx)
    phases.start_cdc(ctx)
    sql(stack, ["UPDATE orders SET status = 'BEFORE' WHERE order_id = 1", "TRUNCATE TABLE order_lines",
                "UPDATE orders SET status = 'AFTER' WHERE order_id = 2"], db)
    from turnout.adapters.mysql.binlog import Truncated

    with pytest.raises(Truncated, match=rf"TRUNCATE of migrated table {db}\.order_lines at binlog .*Re-export"):
        phases.run_capture(ctx, max_seconds=180)  # raises as soon as it meets it
    statuses = [c.image["status"]["S"] for _, c in changelog.iter_changes(ctx.staging)]
    assert statuses == ["BEFORE"]  # before the TRUNCATE: captured; after it: not taken (the capture stopped)
    with pytest.raises(Truncated):  # and a retry stops at the same place: it is not passed over
        phases.run_capture(ctx_for(stack, ctx.spec), max_seconds=180)


def _pair_spec(tmp_path, db, pk_tpl, sk_tpl, staging_name="staging"):
    from turnout.spec import parse_spec

    return parse_spec(f"""\
name: {uniq("it_tpl")}
source: {{kind: mysql, conn_id: m, database: {db}, server_id: 4392}}
target: {{kind: dynamodb, conn_id: t, table: {uniq("tpl")}, key: {{partition: PK, sort: SK}}}}
mapping:
  tables:
    pairs: {{partition_key: "{pk_tpl}", sort_key: "{sk_tpl}"}}
staging: {{url: '{tmp_path / staging_name}'}}
validation: {{buckets: 8, recheck_rounds: 1, recheck_wait_seconds: 0}}
""")


def test_a_key_template_without_a_primary_key_column_is_refused_naming_it(stack, tmp_path):
    db = uniq("tpl")
    wm.create_database(stack["mariadb"], db)
    sql(stack, ["CREATE TABLE pairs (a VARCHAR(20) NOT NULL, b VARCHAR(20) NOT NULL, v INT, PRIMARY KEY (a, b))"], db)
    ctx = ctx_for(stack, _pair_spec(tmp_path, db, "P#{a}", "S"))
    with pytest.raises(PreflightError) as exc:
        phases.preflight(ctx)
    msg = str(exc.value)
    assert "mapping.tables.pairs" in msg and "primary key column(s) ['b'] of table 'pairs'" in msg, msg
    assert "add {b} to partition_key or sort_key" in msg


def test_separators_inside_values_are_escaped_so_two_rows_stay_two_items(stack, tmp_path):
    """{a}#{b} with (a, b) = ("x#y", "z") and ("x", "y#z"): unescaped, both render "x#y#z"."""
    db = uniq("tpl")
    wm.create_database(stack["mariadb"], db)
    sql(stack, ["CREATE TABLE pairs (a VARCHAR(20) NOT NULL, b VARCHAR(20) NOT NULL, v INT, PRIMARY KEY (a, b))",
                "INSERT INTO pairs VALUES ('x#y', 'z', 1), ('x', 'y#z', 2), ('back\\\\slash', 'q', 3)"], db)
    from test_engine_dynamodb import bulk_copy
    from turnout.phases.validation import validate

    ctx = ctx_for(stack, _pair_spec(tmp_path, db, "P", "{a}#{b}"))
    assert bulk_copy(ctx) == 3
    r = validate(ctx, final=True)
    assert r["ok"] and r["source_count"] == r["target_count"] == 3 and r["duplicates"] == 0, r
    import workload

    items = workload.scan_all(stack["target"]["endpoint"], ctx.spec.target.table)
    sks = sorted(it["SK"]["S"] for it in items)
    # the documented rule: in column values, a separator that follows a column, and the backslash, get a backslash
    assert sks == sorted(["x\\#y#z", "x#y\\#z", "back\\\\slash#q"]), sks


def test_a_geometry_column_is_carried_as_its_bytes_by_export_and_capture(stack, tmp_path):
    """GEOMETRY/POINT values are MySQL's internal form (4-byte SRID + WKB): not text. They were decoded as text and
    failed late; they are bytes (B), equal whether they came by SELECT or by the binlog."""
    from test_engine_dynamodb import bulk_copy
    from turnout.phases.validation import validate
    from turnout.spec import parse_spec

    import workload

    db = uniq("geo")
    wm.create_database(stack["mariadb"], db)
    sql(stack, ["CREATE TABLE places (id INT PRIMARY KEY, spot POINT NOT NULL, area GEOMETRY NULL)",
                "INSERT INTO places VALUES (1, POINT(1, 2), NULL), "
                "(2, POINT(-3.5, 4.25), ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'))"], db)
    spec = parse_spec(f"""\
name: {uniq("it_geo")}
source: {{kind: mysql, conn_id: m, database: {db}, server_id: 4393}}
target: {{kind: dynamodb, conn_id: t, table: {uniq("geo")}, key: {{partition: PK, sort: SK}}}}
mapping:
  tables:
    places: {{partition_key: "PLACE#{{id}}", sort_key: "PLACE"}}
staging: {{url: '{tmp_path / "staging"}'}}
apply: {{poll_interval_seconds: 0.2}}
validation: {{buckets: 8, recheck_rounds: 1, recheck_wait_seconds: 0}}
""")
    ctx = ctx_for(stack, spec)
    assert bulk_copy(ctx) == 2
    sql(stack, ["UPDATE places SET spot = POINT(7, 8) WHERE id = 1",
                "INSERT INTO places VALUES (3, POINT(0, 0), ST_GeomFromText('LINESTRING(0 0,5 5)'))"], db)
    phases.run_capture(ctx, max_seconds=3)
    out = phases.run_apply(ctx, max_seconds=3)
    assert out["rejected"] == 0 and out["puts"] == 2
    assert validate(ctx, final=True)["ok"]
    wkb = {r[0]: r[1] for r in sql(stack, ["SELECT id, ST_AsWKB(spot) FROM places"], db)[0]}
    items = {it["PK"]["S"]: it for it in workload.scan_all(stack["target"]["endpoint"], spec.target.table)}
    for pid in (1, 2, 3):
        stored = items[f"PLACE#{pid}"]["spot"]["B"]
        assert stored[4:] == bytes(wkb[pid])  # SRID (4 bytes) + the WKB MySQL gives for it


def test_two_tables_with_key_templates_of_one_shape_are_a_no_go(stack, tmp_path):
    from turnout.spec import parse_spec

    db = uniq("shape")
    wm.create_database(stack["mariadb"], db)
    sql(stack, ["CREATE TABLE retail (code VARCHAR(16) PRIMARY KEY, qty INT)",
                "CREATE TABLE wholesale (code VARCHAR(16) PRIMARY KEY, qty INT)"], db)
    spec = parse_spec(f"""\
name: {uniq("it_shape")}
source: {{kind: mysql, conn_id: m, database: {db}, server_id: 4394}}
target: {{kind: dynamodb, conn_id: t, table: {uniq("shape")}, key: {{partition: PK, sort: SK}}}}
mapping:
  tables:
    retail: {{partition_key: "ITEM#{{code}}", sort_key: "STOCK"}}
    wholesale: {{partition_key: "ITEM#{{code}}", sort_key: "STOCK"}}
staging: {{url: '{tmp_path / "staging"}'}}
""")
    with pytest.raises(PreflightError, match=r"mapping.tables.retail and mapping.tables.wholesale have key templates "
                                             r"of one shape"):
        phases.preflight(ctx_for(stack, spec))


def test_a_text_column_in_a_character_set_the_capture_cannot_decode_is_a_no_go_naming_it(stack, tmp_path):
    """ucs2 (Python has no codec: the binlog reader would hand over bytes) and utf16 (big-endian in MySQL,
    decoded in the machine's order by Python's utf-16): the export's SELECT gets the server's conversion, the
    capture would not, so preflight names each column and the fix. latin1 is decoded as the server does: GO."""
    db = uniq("cs")
    wm.create_database(stack["mariadb"], db)
    sql(stack, ["ALTER TABLE customers ADD COLUMN nick VARCHAR(10) CHARACTER SET ucs2 NULL",
                "ALTER TABLE orders ADD COLUMN memo TEXT CHARACTER SET utf16 NULL",
                "ALTER TABLE order_lines ADD COLUMN label VARCHAR(10) CHARACTER SET latin1 NULL"], db)
    ctx, msg = _no_go(stack, tmp_path, db)
    assert f"column {db}.customers.nick is in character set ucs2" in msg, msg
    assert f"column {db}.orders.memo is in character set utf16" in msg, msg
    assert "MODIFY `nick` varchar(10) CHARACTER SET utf8mb4" in msg, msg
    assert "label" not in msg, msg
    sql(stack, ["ALTER TABLE customers MODIFY nick VARCHAR(10) CHARACTER SET utf8mb4 NULL",
                "ALTER TABLE orders MODIFY memo TEXT CHARACTER SET utf8mb4 NULL"], db)
    assert phases.preflight(ctx_for(stack, ctx.spec))["status"] == "GO"  # and fixed, it passes
