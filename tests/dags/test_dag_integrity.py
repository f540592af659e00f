"""DAG integrity: every spec builds, the promised task order holds, approval comes before cutover,
a broken spec is an import error naming file, line and key while the other DAGs still load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def dagbag(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNOUT_STAGING", str(tmp_path / "staging"))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    from airflow.dag_processing.dagbag import DagBag

    def make(extra_specs: dict[str, str] | None = None):
        d = tmp_path / "dags"
        shutil.copytree(ROOT / "dags", d, dirs_exist_ok=True)
        for name, text in (extra_specs or {}).items():
            (d / "specs" / name).write_text(text)
        DagBag(str(d))  # the loader's pass writes one DAG file per spec, which the next listing finds
        return DagBag(str(d))

    return make


def _all_upstream(task):
    seen, todo = set(), list(task.upstream_list)
    while todo:
        t = todo.pop()
        if t.task_id not in seen:
            seen.add(t.task_id)
            todo.extend(t.upstream_list)
    return seen


def test_every_spec_builds_with_the_promised_order(dagbag):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from turnout.plan import PROMISED_ORDER

    bag = dagbag()
    assert not bag.import_errors
    specs = sorted((ROOT / "dags" / "specs").glob("*.yaml"))
    assert sorted(bag.dag_ids) == sorted([f"migrate__{p.stem}" for p in specs] + [f"recopy__{p.stem}" for p in specs])
    for dag_id in bag.dag_ids:
        dag = bag.dags[dag_id]
        if dag_id.startswith("recopy__"):  # the on-demand re-copy: one task, a trigger form
            assert [t.task_id for t in dag.tasks] == ["recopy"] and set(dag.params.keys()) == {
                "tables", "segments", "keys_file"}
            continue
        assert dag_id.startswith("migrate__") and "turnout" in dag.tags and dag.max_active_runs == 1
        for earlier, later in zip(PROMISED_ORDER, PROMISED_ORDER[1:]):
            assert earlier in _all_upstream(dag.get_task(later)), (dag_id, earlier, later)
        assert isinstance(dag.get_task("approve_cutover"), ApprovalOperator)
        assert "approve_cutover" in _all_upstream(dag.get_task("cutover"))
        assert dag.get_task("capture").upstream_task_ids == {"start_cdc"}
        assert dag.get_task("capture").retries >= 5 and dag.get_task("apply").retries >= 5
        assert set(dag.params.keys()) >= {"dry_run", "segments", "read_items_per_second", "write_items_per_second"}


def test_broken_spec_is_an_import_error_and_others_still_load(dagbag):
    bad = "name: broken\nsource: {kind: dynamodb, conn_id: a, table: t}\n" \
          "target: {kind: dynamodb, conn_id: b, table: t, colour: red}\nstaging: {url: /tmp/x}\n"
    bag = dagbag({"broken.yaml": bad})
    assert "migrate__demo_orders_to_alternator" in bag.dag_ids and "migrate__broken" not in bag.dag_ids
    [(path, msg)] = bag.import_errors.items()
    assert path.endswith("_turnout_specs/broken.py")  # the broken spec's own file: the others are not touched
    assert "broken.yaml:3: target.colour: unknown key" in msg
    specs = sorted(p.stem for p in (ROOT / "dags" / "specs").glob("*.yaml"))
    assert sorted(bag.dag_ids) == sorted([f"migrate__{s}" for s in specs] + [f"recopy__{s}" for s in specs])


def test_one_dag_file_per_spec_follows_the_specs(tmp_path):
    from turnout_airflow.factory import STUB_DIR, sync_spec_stubs

    (tmp_path / "specs").mkdir()
    for n in ("a", "b"):
        (tmp_path / "specs" / f"{n}.yaml").write_text("name: x\n")
    assert [p.name for p in sync_spec_stubs(tmp_path)] == ["a.py", "b.py"]
    stub = tmp_path / STUB_DIR / "a.py"
    mtime = stub.stat().st_mtime_ns
    sync_spec_stubs(tmp_path)
    assert stub.stat().st_mtime_ns == mtime  # unchanged specs: files untouched (Airflow re-parses on mtime)
    assert "spec_dag('specs/a.yaml', globals())" in stub.read_text()
    (tmp_path / "specs" / "a.yaml").unlink()
    assert [p.name for p in sync_spec_stubs(tmp_path)] == ["b.py"] and not stub.exists()


def test_a_read_only_dags_folder_falls_back_to_building_in_the_loader(tmp_path, monkeypatch):
    from turnout_airflow import factory

    d = tmp_path / "dags"
    shutil.copytree(ROOT / "dags", d)
    monkeypatch.setenv("TURNOUT_STAGING", str(tmp_path / "staging"))

    def refuse(*a, **k):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(factory, "sync_spec_stubs", refuse)
    ns: dict = {}
    assert factory.load_dags(d / "specs", ns) == []
    assert sorted(k for k in ns if k.startswith("migrate__")) == sorted(
        f"migrate__{p.stem}" for p in (d / "specs").glob("*.yaml"))


def test_operators_do_no_io_at_parse_time_and_template_fields(dagbag, monkeypatch):
    # parsing must not touch any connection: no AWS endpoint is reachable here and none is defined
    monkeypatch.delenv("AIRFLOW_CONN_TURNOUT_SOURCE", raising=False)
    bag = dagbag()
    dag = bag.dags["migrate__demo_orders_to_alternator"]
    assert "spec_file" in dag.get_task("preflight").template_fields
    assert dag.get_task("preflight").spec["source"]["table"] == "orders"


def test_trigger_serialises_round_trip():
    from turnout_airflow.triggers import TurnoutWaitTrigger

    t = TurnoutWaitTrigger(spec={"name": "x"}, spec_file="f.yaml", params={"a": 1}, check="catch_up", poll_seconds=2,
                           run_id="r")
    path, kwargs = t.serialize()
    assert path == "turnout_airflow.triggers.TurnoutWaitTrigger"
    assert TurnoutWaitTrigger(**kwargs).serialize() == (path, kwargs)
    with pytest.raises(ValueError):
        TurnoutWaitTrigger(spec={}, spec_file="", params={}, check="nope")


def test_missing_connection_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    from turnout.errors import PreflightError
    from turnout_airflow.hooks import dynamodb_config

    with pytest.raises(PreflightError, match=r"specs/x.yaml: source.conn_id: Airflow connection 'no_such_conn' is not "
                                             r"defined .* AIRFLOW_CONN_NO_SUCH_CONN"):
        dynamodb_config("no_such_conn", "specs/x.yaml: source.conn_id")


def test_connection_becomes_adapter_config(monkeypatch, tmp_path):
    import json

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_SRC_X", json.dumps({"conn_type": "aws", "login": "AK", "password": "SK", "extra": {
        "endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"}}))
    from turnout_airflow.hooks import dynamodb_config

    cfg = dynamodb_config("src_x", "where")
    assert (cfg.endpoint_url, cfg.region_name, cfg.aws_access_key_id, cfg.aws_secret_access_key) == (
        "http://127.0.0.1:9", "eu-west-1", "AK", "SK")


def test_mysql_connection_becomes_adapter_config_or_a_named_error(monkeypatch, tmp_path):
    import json

    from turnout.errors import PreflightError
    from turnout_airflow.hooks import mysql_config

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", json.dumps({
        "conn_type": "mysql", "host": "db.internal", "port": 3307, "login": "turnout", "password": "pw",
        "extra": {"ssl": {"ca": "/etc/ca.pem"}}}))
    cfg = mysql_config("shop_db", "shop", "where")
    assert (cfg.host, cfg.port, cfg.user, cfg.password, cfg.database, cfg.ssl) == (
        "db.internal", 3307, "turnout", "pw", "shop", {"ca": "/etc/ca.pem"})
    with pytest.raises(PreflightError, match=r"specs/s.yaml: source.conn_id: Airflow connection 'nope' is not defined"):
        mysql_config("nope", "shop", "specs/s.yaml: source.conn_id")


def test_approval_options_follow_the_repair_and_a_cdc_only_dag_gates_the_apply(tmp_path):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from turnout.spec import parse_spec
    from turnout_airflow import operators as ops
    from turnout_airflow.factory import build_dag

    assert ops.approval_options(None) == ["Approve", "Reject"]
    assert ops.approval_options({"status": "repaired", "repaired": 4}) == ["Approve", "Reject"]
    assert ops.approval_options({"status": "over_limit", "pending": 5000}) == [
        ops.REPAIR_ALL, ops.RECOPY_SEGMENTS, "Reject"]
    assert ops._listed("a, b\nc") == ["a", "b", "c"] and ops._listed(["x", ""]) == ["x"] and ops._listed(None) == []
    spec = parse_spec("name: cdc\nsource: {kind: dynamodb, conn_id: s, table: t}\n"
                      "target: {kind: dynamodb, conn_id: d, table: t}\n"
                      f"staging: {{url: '{tmp_path}'}}\nexport: {{mode: none}}\n")
    dag = build_dag(spec)
    gate = dag.get_task("confirm_target_loaded")
    assert isinstance(gate, ApprovalOperator) and gate.upstream_task_ids == {"start_cdc"}
    assert dag.get_task("apply").upstream_task_ids == {"confirm_target_loaded"}
    assert not {"export", "load"} & set(dag.task_ids)
    approval = dag.get_task("approve_cutover")
    approval.validate_chosen_options([ops.REPAIR_ALL])  # accepted though not in the parse-time options
    import pytest

    with pytest.raises(ValueError):
        approval.validate_chosen_options(["Cut over anyway"])


def test_a_fallback_dag_runs_the_way_back_after_cutover(tmp_path):
    from airflow.providers.standard.operators.hitl import HITLOperator

    from turnout.spec import parse_spec
    from turnout_airflow import operators as ops
    from turnout_airflow.factory import build_dag

    spec = parse_spec("name: fb\nsource: {kind: dynamodb, conn_id: s, table: t}\n"
                      "target: {kind: dynamodb, conn_id: d, table: t}\n"
                      f"staging: {{url: '{tmp_path}'}}\nfallback: {{enabled: true, window_hours: 24}}\n")
    dag = build_dag(spec)
    for tid in ("reverse_capture", "reverse_apply", "fallback_decision"):
        assert dag.get_task(tid).upstream_task_ids == {"cutover"}, tid
    gate = dag.get_task("fallback_decision")
    assert isinstance(gate, HITLOperator) and gate.options == [ops.ROLL_BACK, ops.DECOMMISSION]
    assert gate.response_timeout is None  # the window's end asks again, never decides by itself
    assert dag.get_task("fallback_end").upstream_task_ids == {"fallback_decision"}
    assert dag.get_task("reverse_capture").reverse and dag.get_task("reverse_capture").retries >= 5
