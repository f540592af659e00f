"""`make demo`: a real live migration, end to end, on the embedded stack.

Starts DynamoDB Local (source and target), moto, the Cosmos DB server and MariaDB, seeds the route's source
(DynamoDB items of every type; for ROUTE=mysql-dynamodb a MariaDB shop schema of three tables; for
ROUTE=cosmos-mongo-documentdb three collections on a MongoDB-wire server), starts a
live writer (puts, updates, deletes; the same keys more than once; key-changing UPDATEs), runs the
migration DAG on a real Airflow scheduler, freezes the writer and answers the cutover approval
through Airflow's REST API (or leaves it to you in the UI with --approve ui), then prints items
copied, changes applied, final lag, validation result and the report's location. Exits non-zero if
the target differs from the source in an independent full-scan comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import airflow_local
import procreg
import stack
import workload
import workload_mongo
import workload_mysql

ROOT = Path(__file__).resolve().parent.parent
TABLE = "orders"
SHOP_DB, SHOP_TABLE = "shop", "shop"
ROWS_PER_CUSTOMER = 10  # 1 customer row + 3 orders + 6 order lines


@dataclass(frozen=True)
class DemoRoute:
    """What the demo does per route: the spec it runs, how it seeds the source, its live writer and its
    independent comparison (each a function of the Migration)."""

    spec: str
    seed: Callable[["Migration"], str]  # -> what was seeded, for the log
    writer: Callable[["Migration"], Any]
    compare: Callable[["Migration"], dict]
    reconciles_deletes: bool = False  # the source's change stream carries no deletes


def _seed_ddb(m: "Migration") -> str:
    src = workload.client(m.source_endpoint)
    workload.create_table(src, TABLE)  # stream off: the spec lets Turnout enable it
    workload.seed(m.source_endpoint, TABLE, m.items)
    if m.source_on == "moto":  # ExportTableToPointInTime needs point-in-time recovery, as on AWS
        src.update_continuous_backups(TableName=TABLE, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
        m._s3_client().create_bucket(Bucket=NATIVE_BUCKET)
    return f"{m.items} items with every DynamoDB type ({'moto' if m.source_on == 'moto' else 'DynamoDB Local'})"


def _seed_mysql(m: "Migration") -> str:
    workload_mysql.create_database(m.eps["mariadb"], SHOP_DB)
    rows = workload_mysql.seed(m.eps["mariadb"], SHOP_DB, max(1, m.items // ROWS_PER_CUSTOMER))
    return f"MariaDB {SHOP_DB}: {rows} rows in 3 tables ({workload_mysql.row_count(m.eps['mariadb'], SHOP_DB)})"


def _seed_mongo(m: "Migration") -> str:
    n = workload_mongo.seed(m.eps["mongo_source"]["uri"], max(1, m.items // 3))
    return f"{n} documents in {', '.join(workload_mongo.NAMESPACES)}"


def _ddb_writer(m: "Migration") -> Any:
    return workload.LiveWriter(m.source_endpoint, TABLE, m.items, rate=m.writer_rate)


ROUTES: dict[str, DemoRoute] = {
    "dynamodb-alternator": DemoRoute(
        "demo_orders_to_alternator", _seed_ddb, _ddb_writer,
        lambda m: workload.full_compare(m.source_endpoint, TABLE, m.eps["target"]["endpoint"], TABLE)),
    "dynamodb-cosmos": DemoRoute(
        "demo_orders_to_cosmos", _seed_ddb, _ddb_writer,
        lambda m: workload.full_compare_cosmos(m.source_endpoint, TABLE, m.eps["cosmos"], m.spec_path(),
                                               m.staging_url)),
    "mysql-dynamodb": DemoRoute(
        "demo_shop_to_dynamodb", _seed_mysql,
        lambda m: workload_mysql.LiveWriter(m.eps["mariadb"], SHOP_DB, max(1, m.items // ROWS_PER_CUSTOMER),
                                            rate=m.writer_rate),
        lambda m: workload_mysql.full_compare(m.eps["mariadb"], SHOP_DB, m.eps["target"]["endpoint"], SHOP_TABLE)),
    "cosmos-mongo-documentdb": DemoRoute(
        "demo_people_to_documentdb", _seed_mongo,
        lambda m: workload_mongo.LiveWriter(m.eps["mongo_source"]["uri"], rate=m.writer_rate),
        lambda m: workload_mongo.full_compare(m.eps["mongo_source"]["uri"], m.eps["mongo_target"]["uri"]),
        reconciles_deletes=True),
}
DAG_ID = "migrate__demo_orders_to_alternator"  # the default route's DAG
NATIVE_BUCKET = "turnout-native-export"  # moto S3 bucket for export mode native (source_on="moto")
STOP = "make stop"  # stops what --keep leaves running (scripts/stack.py stop-all), whatever the --workdir


def _alive_since(pid: int, at: float) -> bool:
    """The process is running and is the one that wrote the record at ``at`` (not a reused pid)."""
    import psutil

    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE and p.create_time() <= at + 1
    except psutil.Error:
        return False


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Migration:
    """One demo/test run: stack + seeded source + live writer + Airflow."""

    def __init__(self, workdir: Path, items: int, writer_rate: float = 50.0, airflow_port: int | None = None,
                 route: str = "dynamodb-alternator", executor: str = "local", staging: str = "local",
                 airflow_options: dict | None = None, spec_overrides: dict | None = None, source_on: str = "ddb"):
        """``executor``: "local" (LocalExecutor, SQLite) or "celery" (CeleryExecutor, PostgreSQL, Redis, two
        workers: see airflow_local). ``staging``: "local" (a directory, ``self.staging``) or "s3" (a bucket on the
        stack's moto S3, through an Airflow aws connection). ``airflow_options``: more LocalAirflow keywords
        (e.g. worker_concurrency, spread_mapped; ``env``: more environment for every Airflow component). ``spec_overrides``: dotted spec keys set in a private copy of the
        route's spec (Airflow then reads a dags folder in the workdir holding the loader and that one spec).
        ``source_on``: "ddb" (DynamoDB Local) or "moto" (moto's DynamoDB, which has ExportTableToPointInTime, for
        export mode native; its S3 holds the export)."""
        if staging not in ("local", "s3"):
            raise ValueError(f"staging must be 'local' or 's3', not {staging!r}")
        self.route, self.name = route, ROUTES[route].spec
        self.dag_id = f"migrate__{self.name}"
        self.workdir = Path(workdir).absolute()
        self.items, self.writer_rate = items, writer_rate
        self.staging = self.workdir / "staging"  # local staging's directory (unused with s3 staging)
        self.staging_kind = staging
        self.staging_url = str(self.staging)  # s3://bucket/prefix with s3 staging (set up in setup())
        self._stage = None
        self.executor = executor
        self.airflow_options = dict(airflow_options or {})
        self.af: airflow_local.LocalAirflow | None = None
        self.eps: dict = {}
        self.writer: workload.LiveWriter | None = None
        self.airflow_port = airflow_port
        self.spec_overrides = dict(spec_overrides or {})
        self.source_on = source_on
        self.approvals: list[dict] = []  # the cutover approvals as Airflow showed them (subject, body, options)

    # ---------------------------------------------------------------- set-up / tear-down
    def setup(self) -> None:
        if self.workdir.exists():
            stack.down(self.workdir / "stack")
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        say("starting the local stack (DynamoDB Local x2, moto S3), 127.0.0.1 only")
        self.eps = stack.up(self.workdir / "stack")
        t0 = time.time()
        seeded = ROUTES[self.route].seed(self)
        say(f"seeded {seeded} in {time.time() - t0:.1f}s")
        env = {
            "AIRFLOW_CONN_TURNOUT_MYSQL": stack.mysql_conn_uri(self.eps["mariadb"]),
            "AIRFLOW_CONN_TURNOUT_MONGO_SOURCE": stack.mongo_conn_uri(self.eps["mongo_source"]),
            "AIRFLOW_CONN_TURNOUT_MONGO_TARGET": stack.mongo_conn_uri(self.eps["mongo_target"]),
            "AIRFLOW_CONN_TURNOUT_SOURCE": stack.aws_conn_uri(self.source_endpoint),
            "AIRFLOW_CONN_TURNOUT_TARGET": stack.aws_conn_uri(self.eps["target"]["endpoint"]),
            "AIRFLOW_CONN_TURNOUT_COSMOS": stack.cosmos_conn_uri(self.eps["cosmos"]["endpoint"]),
            "TURNOUT_STAGING": str(self.staging),
        }
        if self.staging_kind == "s3":
            s3 = self._s3_client()
            bucket = "turnout-staging"
            s3.create_bucket(Bucket=bucket)
            self.staging_url = f"s3://{bucket}/demo"
            self._stage = None
            env.update({"TURNOUT_STAGING": self.staging_url, "TURNOUT_STAGING_CONN": "turnout_staging",
                        "AIRFLOW_CONN_TURNOUT_STAGING": stack.aws_conn_uri(self.eps["s3"]["endpoint"])})
            say(f"staging on the stack's S3 (moto): {self.staging_url}, Airflow connection turnout_staging")
        if self.spec_overrides:
            self.airflow_options["dags_folder"] = self._private_dags()
        env.update(self.airflow_options.pop("env", None) or {})  # e.g. a test's [metrics] settings
        self.af = airflow_local.LocalAirflow(self.workdir / "airflow", env, port=self.airflow_port,
                                             executor=self.executor, **self.airflow_options)
        if self.executor == "celery":
            say(f"starting Airflow with the CeleryExecutor: PostgreSQL metadata DB, Redis broker, api-server, "
                f"scheduler, dag-processor, triggerer and {len(self.af.workers)} celery workers "
                f"({', '.join(self.af.workers)})")
        else:
            say("starting Airflow (api-server, scheduler, dag-processor, triggerer)")
        self.af.start()
        say(f"Airflow is up at {self.af.url} (user {self.af.user}, password {self.af.password})")

    @property
    def source_endpoint(self) -> str:
        return self.eps["s3" if self.source_on == "moto" else "source"]["endpoint"]

    def spec_path(self) -> Path:
        return (self.workdir / "dags" / "specs" if self.spec_overrides else ROOT / "dags" / "specs") / f"{self.name}.yaml"

    def _private_dags(self) -> Path:
        """A dags folder with the loader and this route's spec, ``spec_overrides`` applied (dotted keys)."""
        import yaml

        d = self.workdir / "dags"
        (d / "specs").mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "dags" / "turnout_migrations.py", d / "turnout_migrations.py")
        doc = yaml.safe_load((ROOT / "dags" / "specs" / f"{self.name}.yaml").read_text())
        for dotted, value in self.spec_overrides.items():
            *path, last = dotted.split(".")
            node = doc
            for k in path:
                node = node.setdefault(k, {})
            node[last] = value
        (d / "specs" / f"{self.name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        say(f"private dags folder {d}: {self.name} with {self.spec_overrides}")
        return d

    def teardown(self) -> None:
        if self.writer and self.writer.is_alive():
            self.writer.stop()
        if self.af:
            self.af.stop()
        stack.down(self.workdir / "stack")

    # ---------------------------------------------------------------- the run
    def _s3_client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.eps["s3"]["endpoint"], region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")

    def stage(self):
        """The migration's staging root (turnout.staging.Staging: get_json, list, exists...), local or s3, as
        the engine sees it: ``<staging url>/<migration name>``."""
        if self._stage is None:
            from turnout.staging import open_staging

            self._stage = open_staging(self.staging_url, self._s3_client if self.staging_kind == "s3" else None
                                       ).child(self.name)
        return self._stage

    def staged(self, key: str):
        return self.stage().get_json(key)

    def start_writer(self) -> None:
        self.writer = ROUTES[self.route].writer(self)
        self.writer.start()
        say(f"live writer started: ~{self.writer_rate:.0f} puts/updates/deletes per second on the source")

    def trigger(self, conf: dict | None = None) -> str:
        self.af.wait_dag(self.dag_id)
        self.af.unpause(self.dag_id)
        run_id = self.af.trigger(self.dag_id, conf or {})
        say(f"triggered {self.dag_id} run {run_id} with params {conf or {}}")
        return run_id

    def states(self, run_id: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for ti in self.af.task_instances(self.dag_id, run_id):
            out.setdefault(ti["task_id"], []).append(ti["state"] or "none")
        return out

    def wait_for(self, run_id: str, predicate, what: str, timeout: float = 900, on_tick=None):
        deadline, last_line = time.time() + timeout, ""
        while time.time() < deadline:
            st = self.states(run_id)
            run = self.af.run(self.dag_id, run_id)
            if on_tick:
                on_tick(st)
            line = " ".join(f"{t}={'/'.join(sorted(set(s)))}" + (f"({len(s)})" if len(s) > 1 else "")
                            for t, s in st.items())
            lag = self.lag_line()
            if line + lag != last_line:
                say(f"{line} {lag}")
                last_line = line + lag
            if predicate(st, run):
                return st
            if run["state"] in ("failed",) and what != "run end":
                raise RuntimeError(f"run {run_id} failed while waiting for {what}: {st}")
            time.sleep(2)
        raise TimeoutError(f"timed out waiting for {what}: {self.states(run_id)}")

    def lag_line(self) -> str:
        cap, app = self.staged("capture/checkpoint.json"), self.staged("apply/checkpoint.json")
        if not cap:
            return ""
        return f"| captured={cap['records']} applied={(app or {}).get('consumed', 0)}"

    def answer_until_done(self, run_id: str, option: str | None, timeout: float = 900, task_id: str = "approve_cutover",
                          until=None) -> dict:
        """Answer the approval once it is really waiting (state awaiting_input, HITL details present),
        and again if Airflow re-asks it (a retry after a deferral race); return when the run ends (or, with
        ``until(states, run)``, when that holds)."""
        answered: set[int] = set()
        announced = False

        def tick(st):
            nonlocal announced
            if option is None:
                if not announced and "awaiting_input" in st.get("approve_cutover", []):
                    self.approve(run_id, "ui")
                    announced = True
                return
            if "awaiting_input" not in st.get(task_id, []):
                return
            tis = [t for t in self.af.task_instances(self.dag_id, run_id) if t["task_id"] == task_id]
            try_number = tis[0]["try_number"] if tis else 0
            if try_number in answered:
                return
            pending = [d for d in self.af.pending_approvals()
                       if d.get("task_instance", {}).get("dag_run_id", run_id) == run_id
                       and d.get("task_instance", {}).get("task_id", task_id) == task_id]
            if pending:
                self.approvals.append(pending[0])
                if not answered and task_id == "approve_cutover":
                    self.approve(run_id, "api")
                self.af.answer(self.dag_id, run_id, task_id, option)
                answered.add(try_number)

        return self.wait_for(run_id, until or (lambda st, run: run["state"] in ("success", "failed")), "run end",
                             timeout=timeout, on_tick=tick)

    def approve(self, run_id: str, how: str = "api") -> None:
        if how == "ui":
            say(f"cutover approval is waiting for you: {self.af.url}/required_actions (log in as {self.af.user})")
            return
        say("answering the cutover approval through Airflow's REST API (PATCH .../hitlDetails: Approve); "
            "run with --approve ui to answer it yourself in the Required actions page")

    def damage_target(self, n: int) -> dict:
        """Behind Turnout's back: delete, alter and add ``n`` target items in all (keys the live writer has not
        written and will now leave alone, so only the repair can put them right)."""
        if ROUTES[self.route].spec != "demo_orders_to_alternator":
            raise SystemExit("--damage is built for ROUTE=dynamodb-alternator (the target's items are damaged with "
                             "boto3 on its DynamoDB API)")
        import random

        extras = n // 3
        cands = random.Random(5).sample(range(self.items), min(self.items, max(n * 40, 1)))
        picked = [i for i in cands if self.writer.leaves(i)][: n - extras]
        if len(picked) < n - extras:
            raise RuntimeError(f"only {len(picked)} untouched items to damage")
        hurt = workload.damage(self.eps["target"]["endpoint"], TABLE, picked, extras)
        say(f"DAMAGE behind Turnout's back on the target: {len(hurt['deleted'])} items deleted, "
            f"{len(hurt['altered'])} altered, {len(hurt['added'])} added")
        return hurt

    def damage_accounted(self, hurt: dict) -> dict:
        """The damaged keys against the audit report's repairs (every one must be listed, matching after)."""
        from turnout.codec import key_text

        audit = self.staged("reports/audit-cutover.json") or {}
        repaired = {k["key"] for run in audit.get("repairs", []) for k in run["keys"] if k.get("ok", True)}
        want = {key_text(k) for keys in hurt.values() for k in keys}
        return {"damaged": len(want), "listed_as_repaired": len(want & repaired),
                "not_listed": sorted(want - repaired)[:20]}

    def run_to_end(self, conf: dict | None = None, approve: str = "api", kill: bool = False,
                   timeout: float = 1800, on_tick=None, damage: int = 0) -> dict:
        """``on_tick(states, run_id)``, if given, is called on every poll until the approval is waiting.
        ``damage``: once the load is done, damage that many target items (see damage_target)."""
        self.start_writer()
        run_id = self.trigger(conf)
        killed: dict[str, int] = {}
        done = threading.Event()
        assassin = threading.Thread(target=self._kill_midway, args=(killed, done), name="killer", daemon=True)
        if kill:
            assassin.start()

        hurt: dict = {}

        def killer(st):
            if on_tick:
                on_tick(st, run_id)
            loads = st.get("load", [])
            if damage and not hurt and loads and all(x == "success" for x in loads) and "running" in st.get(
                    "apply", []):
                hurt.update(self.damage_target(damage))

        self.wait_for(run_id, lambda st, run: "awaiting_input" in st.get("approve_cutover", []),
                      "the cutover approval", timeout=timeout, on_tick=killer)
        done.set()
        if kill:
            assassin.join(30)
        counts = self.writer.stop()
        say(f"writes frozen (live writer stopped): {counts}; {len(self.writer.errors)} writer errors"
            + (f", e.g. {self.writer.errors[:3]}" if self.writer.errors else ""))
        final = self.answer_until_done(run_id, "Approve" if approve == "api" else None, timeout)
        run = self.af.run(self.dag_id, run_id)
        return {"run_id": run_id, "state": run["state"], "tasks": final, "writer": counts, "killed": killed,
                "writer_errors": list(self.writer.errors), "damage": hurt}

    def run_fallback(self, approve_timeout: float = 1800, kill_reverse: bool = False) -> dict:
        """The way back (spec fallback.enabled): migrate under the writer and cut over; then the application writes
        to the *target* while the reverse replicates into the source; freeze the target and answer "Roll back"
        through the REST API; return when the run ends."""
        self.start_writer()
        run_id = self.trigger()
        self.wait_for(run_id, lambda st, run: "awaiting_input" in st.get("approve_cutover", []),
                      "the cutover approval", timeout=approve_timeout)
        say(f"writes frozen on the source (live writer stopped): {self.writer.stop()}")
        self.answer_until_done(run_id, "Approve", until=lambda st, run: "awaiting_input" in st.get(
            "fallback_decision", []) or run["state"] == "failed", timeout=approve_timeout)
        if self.af.run(self.dag_id, run_id)["state"] == "failed":
            return {"run_id": run_id, "state": "failed"}
        say("cut over; the application now writes to the TARGET, and the reverse replicates into the source")
        tw = workload.LiveWriter(self.eps["target"]["endpoint"], TABLE, self.items, rate=self.writer_rate, seed_=7)
        tw.start()
        deadline, killed = time.time() + 600, None
        while time.time() < deadline:  # until the way back has carried a good number of the target's writes
            back = self.staged("fallback/apply/checkpoint.json") or {}
            hb = self.staged("fallback/capture/heartbeat.json") or {}
            if kill_reverse and killed is None and hb.get("pid") and not hb.get("stopped") and \
                    (self.staged("fallback/capture/checkpoint.json") or {}).get("records", 0) > 0 and \
                    _alive_since(hb["pid"], hb["at"]):
                airflow_local.kill_pid(hb["pid"])
                killed = hb["pid"]
                say(f"SIGKILL reverse capture (pid {killed}) midway")
            if back.get("consumed", 0) >= 200 and (killed or not kill_reverse):
                break
            time.sleep(2)
        counts = tw.stop()
        say(f"writes frozen on the target: {counts}; {back.get('consumed', 0)}+ changes sent back so far; "
            "answering the fallback decision: Roll back (REST API)")
        final = self.answer_until_done(run_id, "Roll back", task_id="fallback_decision", timeout=approve_timeout)
        fb = self.staged("state/fallback.json") or {}
        return {"run_id": run_id, "state": self.af.run(self.dag_id, run_id)["state"], "tasks": final,
                "target_writer": counts, "fallback": fb, "killed_reverse_capture": killed}

    def _kill_midway(self, killed: dict[str, int], done: threading.Event) -> None:
        """SIGKILL a load task while it writes (first try), then the capture: watched from staging every 0.3 s, in
        its own thread, so a load of a few seconds is not missed between two (slow) polls of Airflow's API."""
        stage = self.stage()  # local or s3 alike
        while not done.wait(0.3) and "capture" not in killed:
            try:
                if "load" not in killed:
                    for key in (k for k in stage.list("load/running/") if k.endswith(".json")):
                        info = stage.get_json(key) or {}
                        # a second into its work (some items written, more to come), still running
                        if (info.get("try") == 1 and time.time() - info["at"] >= 1.0
                                and _alive_since(info["pid"], info["at"])):
                            airflow_local.kill_pid(info["pid"])
                            killed["load"] = info["pid"]
                            say(f"SIGKILL load unit {Path(key).stem} (pid {info['pid']}) midway")
                            break
                else:
                    hb = stage.get_json("capture/heartbeat.json")
                    if hb and not hb.get("stopped") and _alive_since(hb["pid"], hb["at"]):
                        airflow_local.kill_pid(hb["pid"])
                        killed["capture"] = hb["pid"]
                        say(f"SIGKILL capture (pid {hb['pid']}) midway")
            except ProcessLookupError:
                continue
            except Exception as exc:  # noqa: BLE001 - a staging hiccup: look again
                say(f"killer: {type(exc).__name__}: {exc}")

    def audit_report_paths(self, stage) -> dict:
        """Where the cutover's audit report is; with S3 staging (gone with the stack) also copied into the workdir."""
        out = {"audit_report": None, "audit_report_json": None}
        for key, ext in (("audit_report", "html"), ("audit_report_json", "json")):
            name = f"reports/audit-cutover.{ext}"
            if not stage.exists(name):
                continue
            out[key] = f"{stage.url}/{name}"
            if self.staging_kind == "s3":
                local = self.workdir / "reports" / f"audit-cutover.{ext}"
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(stage.get_bytes(name))
                out[key] = f"{local} (copied from {stage.url}/{name})"
        return out

    def summary(self) -> dict:
        stage = self.stage()
        rep = self.staged("reports/cutover.json") or {}
        loaded = sum((stage.get_json(k) or {}).get("written", 0) for k in stage.list("load/done/") if k.endswith(".json"))
        cmp = ROUTES[self.route].compare(self)
        return {
            "items_copied": loaded,
            "changes_captured": rep.get("changes_captured"),
            **({"reconciled_deletes": (self.staged("state/reconcile.json") or {}).get("deleted")}
               if ROUTES[self.route].reconciles_deletes else {}),
            "changes_applied": rep.get("changes_applied"),
            "final_lag_seconds": rep.get("final_lag_seconds"),
            "validation": rep.get("validation"),
            "report": f"{stage.url}/reports/cutover.json",
            **self.audit_report_paths(stage),
            "route": self.route,
            "independent_full_compare": {k: cmp[k] for k in ("source", "target", "differences")},
            "cmp": cmp,
        }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--route", default="dynamodb-alternator", choices=sorted(ROUTES))
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--writer-rate", type=float, default=50.0)
    ap.add_argument("--approve", choices=["api", "ui"], default="api")
    ap.add_argument("--keep", action="store_true", help="leave Airflow and the stack running afterwards")
    ap.add_argument("--workdir", default=str(ROOT / ".demo"))
    ap.add_argument("--executor", choices=["local", "celery"], default="local",
                    help="celery: CeleryExecutor with a private PostgreSQL and Redis and two celery workers")
    ap.add_argument("--fallback", action="store_true",
                    help="the way back: after cutover the writer writes to the target, the reverse replicates into "
                         "the source, and the demo answers Roll back (ROUTE=dynamodb-alternator)")
    ap.add_argument("--damage", type=int, default=0, metavar="N",
                    help="after the load, delete/alter/add N target items behind Turnout's back; the run must "
                         "repair them (ROUTE=dynamodb-alternator)")
    ap.add_argument("--staging", choices=["local", "s3"], default="local",
                    help="s3: staging in a bucket on the stack's S3 (moto), as with several worker hosts")
    a = ap.parse_args(argv)
    m = Migration(Path(a.workdir), a.items, a.writer_rate, route=a.route, executor=a.executor, staging=a.staging,
                  spec_overrides={"fallback.enabled": True} if a.fallback else None)
    # the demo itself (its live writer is a thread of it) is in the process registry too: `make stop` stops a
    # demo still running, along with the stack and the Airflow it started
    procreg.record(os.getpid(), "demo", sys.argv, m.workdir)
    try:
        m.setup()
        if a.fallback:
            return _fallback_demo(m)
        res = m.run_to_end(approve=a.approve, damage=a.damage)
        s = m.summary()
        say(f"run {res['run_id']}: {res['state']}")
        print(json.dumps({k: v for k, v in s.items() if k != "cmp"}, indent=2))
        ok = res["state"] == "success" and s["independent_full_compare"]["differences"] == 0
        if a.damage:
            acc = m.damage_accounted(res["damage"]) if res["damage"] else {"damaged": 0, "listed_as_repaired": 0}
            say(f"damage: {acc['damaged']} keys damaged after the load; {acc['listed_as_repaired']} listed as "
                f"repaired in the audit report" + (f"; NOT listed: {acc['not_listed']}" if acc.get("not_listed")
                                                    else ""))
            ok = ok and acc["damaged"] == a.damage and acc["listed_as_repaired"] == a.damage
        if not ok:
            say(f"FAILED: {s['cmp']}")
        else:
            say(f"OK: {s['items_copied']} items copied, {s['changes_applied']} changes applied, final lag "
                f"{s['final_lag_seconds']} s, zero differences")
            say(f"audit report (HTML, with pictures): {s['audit_report']}")
            say(f"audit report (JSON): {s['audit_report_json']}")
        return 0 if ok else 1
    finally:
        procreg.forget(os.getpid())
        if not a.keep:
            m.teardown()
        else:
            say(f"left running: Airflow {m.af.url if m.af else '-'} and the stack; stop everything with `{STOP}`")


def _fallback_demo(m: Migration) -> int:
    if m.route != "dynamodb-alternator":
        raise SystemExit("--fallback is built for ROUTE=dynamodb-alternator (the Mongo route's way back is in "
                         "tests/integration/test_fallback.py)")
    res = m.run_fallback()
    fb = res.get("fallback") or {}
    cmp = workload.full_compare(m.source_endpoint, TABLE, m.eps["target"]["endpoint"], TABLE)
    say(f"run {res['run_id']}: {res['state']}; fallback {fb.get('decision')} by {fb.get('decided_by')}: "
        f"{fb.get('changes_sent_back')} changes sent back to the source; validation of source = target: "
        f"{'OK' if (fb.get('validation') or {}).get('ok') else 'NOT OK'}")
    ok = res["state"] == "success" and fb.get("decision") == "rolled back" and cmp["differences"] == 0
    if ok:
        say(f"OK: rolled back; independent comparison source = target ({cmp['source']} items): zero differences")
        say(f"audit report: {m.stage().url}/reports/audit-fallback.html")
    else:
        say(f"FAILED: {cmp}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
