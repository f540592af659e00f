"""A write after the approval is never a silent success, on a real scheduler (MySQL route: the binlog stamps every
change with the server's time). The live writer stops, the cutover is approved, and 4 s later (past the 2 s clock
allowance) one more UPDATE lands on the source while the cutover drains: the cutover fails naming that row's key,
records no success, and its report lists the key."""

from __future__ import annotations

import threading
import time

import pytest

import demo
import workload_mysql

pytestmark = [pytest.mark.server, pytest.mark.airflow]


def test_a_write_after_the_approval_fails_the_cutover_naming_its_key(route_migration):
    m = route_migration(items=800, writer_rate=15, route="mysql-dynamodb",
                        spec_overrides={"cutover.quiet_seconds": 30})  # the drain outlasts the late write
    m.start_writer()
    run_id = m.trigger()
    m.wait_for(run_id, lambda st, run: "awaiting_input" in st.get("approve_cutover", []), "the approval", timeout=900)
    m.writer.stop()
    late: dict = {}

    def write_late():
        deadline = time.time() + 600
        while time.time() < deadline and m.states(run_id).get("approve_cutover") != ["success"]:
            time.sleep(1)
        time.sleep(4)
        conn = workload_mysql.connect(m.eps["mariadb"], demo.SHOP_DB)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT MIN(customer_id) FROM customers")
                cid = cur.fetchone()[0]
                cur.execute("UPDATE customers SET name = CONCAT(name, ' (late)') WHERE customer_id = %s", (cid,))
            late["cid"], late["at"] = cid, time.time()
        finally:
            conn.close()

    t = threading.Thread(target=write_late, daemon=True)
    t.start()
    st = m.answer_until_done(run_id, "Approve", timeout=900)
    t.join(60)
    assert late, "the late write was not made"
    assert st.get("cutover") == ["failed"], st
    assert m.staged("state/cutover.json") is None  # no success recorded
    rep = m.staged("reports/cutover-late-writes.json")
    assert rep["count"] >= 1 and rep["policy"] == "fail", rep
    assert any("customers" in k and str(late["cid"]) in k for k in rep["first_keys"]), (rep, late)
    assert late["at"] > rep["freeze_at"]
    log = m.af.log(m.dag_id, run_id, "cutover")
    assert "were made after the freeze" in log and f"\"customer_id\":[\"N\",\"{late['cid']}\"]" in log, log[-2000:]
