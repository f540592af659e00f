"""Spec -> DAG. The engine's task plan gives ids, kinds and edges; this module only picks operators.

A spec that fails to load becomes an import error that names the file, line and key; the other
specs' DAGs still load.
"""

from __future__ import annotations

from typing import Any

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param

from turnout.errors import SpecError
from turnout.plan import task_plan
from turnout.spec import MigrationSpec, load_spec

from . import operators as ops

KINDS = {
    "preflight": ops.PreflightOperator,
    "start_cdc": ops.StartCdcOperator,
    "capture": ops.CaptureOperator,
    "plan_export": ops.PlanExportOperator,
    "export": ops.ExportOperator,
    "plan_load": ops.PlanLoadOperator,
    "load": ops.LoadOperator,
    "apply": ops.ApplyOperator,
    "catch_up": ops.CatchUpOperator,
    "validate": ops.ValidateOperator,
    "cutover": ops.CutoverOperator,
}


def dag_params(spec: MigrationSpec) -> dict[str, Param]:
    return {
        "dry_run": Param(False, type="boolean", description="run preflight only; change nothing"),
        "segments": Param(None, type=["null", "integer"], minimum=1,
                          description="export segments (first run only; the plan is fixed with the CDC position)"),
        "read_items_per_second": Param(None, type=["null", "number"], minimum=0,
                                       description=f"overrides rate_limits.read_items_per_second "
                                                   f"({spec.rate_limits.read_items_per_second})"),
        "write_items_per_second": Param(None, type=["null", "number"], minimum=0,
                                        description=f"overrides rate_limits.write_items_per_second "
                                                    f"({spec.rate_limits.write_items_per_second})"),
        "lag_threshold_seconds": Param(None, type=["null", "number"], exclusiveMinimum=0,
                                       description=f"overrides catch_up.lag_threshold_seconds "
                                                   f"({spec.catch_up.lag_threshold_seconds})"),
    }


def build_dag(spec: MigrationSpec, spec_file: str = "") -> DAG:
    spec_doc = spec.model_dump(mode="json")
    dag = DAG(
        dag_id=spec.dag_id,
        description=spec.description or f"Turnout live migration {spec.name}",
        schedule=spec.schedule,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["turnout", f"{spec.source.kind}-to-{spec.target.kind}", *spec.tags],
        params=dag_params(spec),
        default_args={"owner": spec.owner, "retries": 2, "retry_delay": timedelta(seconds=10)},
        doc_md=f"Turnout migration from `{spec_file}` (spec digest `{spec.digest()}`).",
    )
    built: dict[str, Any] = {}
    with dag:
        for t in task_plan(spec):
            common = {"task_id": t.task_id, "doc_md": t.doc}
            if t.kind == "approval":
                op = ops.CutoverApprovalOperator(
                    spec=spec_doc, spec_file=spec_file, subject=f"Cut over {spec.name}?", body=ops.APPROVAL_BODY,
                    retries=3, retry_delay=timedelta(seconds=5), **common)  # deferrals can race under LocalExecutor
            else:
                cls = KINDS[t.kind]
                kw: dict[str, Any] = dict(spec=spec_doc, spec_file=spec_file, **common)
                if t.long_running:
                    kw.update(ops.RETRY_LONG)
                if t.kind in ("catch_up", "plan_export"):
                    kw["retries"] = 3  # deferrals can race under LocalExecutor
                if t.mapped_over:
                    # the spec's rate is split between parallel_tasks tasks: never run more than that
                    kw["max_active_tis_per_dagrun"] = spec.rate_limits.parallel_tasks
                    # BaseOperatorMeta adds partial (typeshed does not know it)
                    op = cls.partial(**kw).expand(unit=built[t.mapped_over].output)  # type: ignore[attr-defined]
                else:
                    op = cls(**kw)
            built[t.task_id] = op
        for t in task_plan(spec):
            for up in t.upstream:
                built[up] >> built[t.task_id]
    return dag


class BrokenSpecs(DAG):
    """Stands in for specs that did not load: Airflow records its validation error as the loader
    file's import error (naming every broken spec, its line and key), and keeps the good DAGs."""

    def validate(self):  # noqa: D102 - Airflow calls this while bagging
        raise SpecError("\n".join(self.doc_md.splitlines()[1:]))


def load_dags(spec_dir: str | Path, namespace: dict) -> list[str]:
    """Build one DAG per ``*.yaml`` in spec_dir into ``namespace``; return the error messages."""
    errors = []
    for path in sorted(Path(spec_dir).glob("*.y*ml")):
        try:
            spec = load_spec(path)
            namespace[spec.dag_id] = build_dag(spec, str(path))
        except SpecError as exc:
            errors.append(str(exc))
        except Exception as exc:  # a bug must not take the other migrations down either
            errors.append(f"{path}: {type(exc).__name__}: {exc}")
    if errors:
        namespace["turnout__broken_specs"] = BrokenSpecs(
            dag_id="turnout__broken_specs", schedule=None, start_date=datetime(2026, 1, 1),
            doc_md="Turnout specs that failed to load:\n" + "\n".join(errors))
    return errors
