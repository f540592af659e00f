"""A broken spec stops only itself, on the real dag-processor, scheduler and api-server (not an in-process DagBag).

While a live migration runs, three new specs are dropped into the dags folder's specs/: one with a misspelt key, one
whose alert notifier does not import, one good. The misspelt one becomes an import error (Airflow's importErrors
API) naming the YAML file, line and key, the other names the notifier and where it is in the spec; the
running migration goes on to a successful cutover with zero differences; and the good new migration is listed and
can be triggered (a dry run, preflight only, to success)."""

from __future__ import annotations

import time

import pytest
import yaml

pytestmark = [pytest.mark.server, pytest.mark.airflow]


def test_a_misspelt_spec_dropped_in_during_a_live_migration_stops_only_itself(route_migration):
    m = route_migration(items=1500, writer_rate=20, spec_overrides={"description": "spec isolation e2e"})
    specs = m.spec_path().parent
    good = yaml.safe_load(m.spec_path().read_text())
    dropped: dict = {}

    def on_tick(states, run_id):
        if not dropped and "success" in states.get("start_cdc", []):  # the live migration is under way
            typo = {**good, "name": "typo_migration", "target": {**good["target"], "tabel": "x"}}
            (specs / "typo_migration.yaml").write_text(yaml.safe_dump(typo, sort_keys=False))
            notifier = {**good, "name": "notifier_migration", "alerts": {"notifiers": [
                {"notifier": "airflow.providers.standard.notifications.no_such.Notifier"}]}}
            (specs / "notifier_migration.yaml").write_text(yaml.safe_dump(notifier, sort_keys=False))
            (specs / "second_migration.yaml").write_text(yaml.safe_dump({**good, "name": "second_migration"},
                                                                       sort_keys=False))
            dropped["at"] = time.time()

    res = m.run_to_end(timeout=1500, on_tick=on_tick)
    assert dropped, "the specs were never dropped in (start_cdc never succeeded)"
    assert res["state"] == "success", res  # scheduled on, through approval and cutover, beside the broken spec

    deadline, errors = time.time() + 180, []
    while time.time() < deadline:
        errors = m.af.request("GET", "/api/v2/importErrors")["import_errors"]
        if all(any(f in e["stack_trace"] for e in errors) for f in ("typo_migration.yaml", "notifier_migration")):
            break
        time.sleep(3)
    [err] = [e for e in errors if "typo_migration.yaml" in e["stack_trace"]]
    assert "target.tabel: unknown key" in err["stack_trace"], err
    assert ":" in err["stack_trace"].split("typo_migration.yaml", 1)[1][:6], err  # file:line
    # a notifier that does not import: that spec's DAG file only, naming the notifier and where it is
    [bad] = [e for e in errors if "notifier_migration" in e["stack_trace"]]
    assert "alerts.notifiers[0]" in bad["stack_trace"] and "no_such.Notifier" in bad["stack_trace"], bad
    assert not [e for e in errors if e is not err and e is not bad], errors  # nothing else is broken

    s = m.summary()
    assert s["cmp"]["differences"] == 0, s["cmp"]

    m.af.wait_dag("migrate__second_migration", timeout=180)
    m.af.unpause("migrate__second_migration")
    run = m.af.trigger("migrate__second_migration", {"dry_run": True})
    deadline, state = time.time() + 300, None
    while time.time() < deadline:
        state = m.af.run("migrate__second_migration", run)["state"]
        if state in ("success", "failed"):
            break
        time.sleep(3)
    assert state == "success", state
    assert m.af.run(m.dag_id, res["run_id"])["state"] == "success"
