"""A demo migration per e2e test: set up on its own stack and Airflow, torn down afterwards, with the Airflow
component logs kept as test artifacts; and the checks every live e2e run makes of what a person is shown
(the cutover approval) and of the live writer (its errors)."""

from __future__ import annotations

import pytest

import demo
import workload_base


@pytest.fixture()
def route_migration(tmp_path, artifacts_dir):
    made: list[demo.Migration] = []

    def make(**kw) -> demo.Migration:
        m = demo.Migration(tmp_path / "w", **kw)
        made.append(m)
        m.setup()
        return m

    yield make
    for m in made:
        for f in (m.workdir / "airflow").glob("*.log"):
            (artifacts_dir / f"{tmp_path.name}-{f.name}").write_bytes(f.read_bytes()[-200_000:])
        m.teardown()


@pytest.fixture()
def browser():
    from browser import chromium

    with chromium() as ctx:
        yield ctx


def writer_problems(res: dict) -> list[str]:
    """The live writer's errors, printed, against the bound (workload_base.MAX_ERROR_SHARE of its operations): a
    writer that mostly failed would leave the migration nothing live to carry."""
    w, errors = res["writer"], res["writer_errors"]
    ops, bound = workload_base.operations(w), workload_base.error_bound(w)
    print(f"live writer: {ops} operations {w}, {w['errors']} errors (accepted: at most {bound}, "
          f"{workload_base.MAX_ERROR_SHARE:.0%}); errors seen: {errors[:10]}")
    out = []
    if w["errors"] != len(errors):
        out.append(f"writer error count {w['errors']} != {len(errors)} errors recorded")
    if w["errors"] > bound:
        out.append(f"live writer: {w['errors']} errors of {ops} operations, more than {bound}: {errors[:5]}")
    return out


def approval_problems(m: demo.Migration, run_id: str) -> list[str]:
    """The cutover approval as Airflow showed it (HITL details): subject, options and a body holding what a person
    needs to decide, with the values the catch_up and validate tasks returned (plugins/turnout_airflow: the DAG
    factory's subject, operators.APPROVAL_BODY)."""
    if not m.approvals:
        return ["no cutover approval was seen waiting"]
    a = m.approvals[-1]
    cu = m.af.xcom(m.dag_id, run_id, "catch_up") or {}
    v = m.af.xcom(m.dag_id, run_id, "validate") or {}
    body, out = a.get("body") or "", []
    print(f"approval shown: subject {a.get('subject')!r}, options {a.get('options')}\n{body}")
    if a.get("subject") != f"Cut over {m.name}?":
        out.append(f"approval subject {a.get('subject')!r}")
    if sorted(a.get("options") or []) != ["Approve", "Reject"]:
        out.append(f"approval options {a.get('options')}")
    want = [
        f"**Cutover of `{m.dag_id}`**",
        "approve only once the application's writes to the source are stopped",
        f"| lag | {cu.get('lag_seconds')} s |",
        f"| backlog | {cu.get('backlog')} changes |",
        f"| changes captured / applied | {cu.get('captured')} / {cu.get('applied')} |",
        f"| source / target items | {v.get('source_count')} / {v.get('target_count')} |",
        f"| validation | OK, 0 differences; report {v.get('report')} |",
    ]
    out += [f"approval body lacks {w!r}" for w in want if w not in body]
    if "None" in body or not (cu and v):
        out.append(f"approval body shows a missing value (catch_up {cu}, validate {v})")
    return out


@pytest.fixture()
def live_checks():
    """``live_checks.writer(res)``, ``live_checks.approval(m, run_id)``: lists of problems (empty when fine), so a
    run of several minutes reports every failed check at once."""
    from types import SimpleNamespace

    return SimpleNamespace(writer=writer_problems, approval=approval_problems)
