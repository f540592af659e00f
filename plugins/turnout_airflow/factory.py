"""Spec -> DAG. The engine's task plan gives ids, kinds and edges; this module only picks operators.

One DAG file per spec: Airflow 3 records an import error per *file* and takes every DAG of that file off the
scheduler with it, so the loader (``dags/turnout_migrations.py``) keeps one small generated file per spec in
``dags/_turnout_specs/`` and builds nothing itself. A spec that fails to load is an import error of its own file,
naming the YAML file, line and key; every other migration stays listed, scheduled and triggerable.
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
from .observe import build_notifier

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
    "repair": ops.RepairOperator,
    "sampled_validation": ops.SampledValidationOperator,
    "reverse_capture": ops.ReverseCaptureOperator,
    "reverse_apply": ops.ReverseApplyOperator,
    "fallback_end": ops.FallbackEndOperator,
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
    for i in range(len(spec.alerts.notifiers)):  # a misspelt notifier or wrong args fail this spec's file only
        try:
            build_notifier(spec, i)
        except ValueError as exc:
            raise SpecError(f"{spec_file or spec.name}: {exc}") from None
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
            op: Any
            if t.kind == "approval":
                op = ops.CutoverApprovalOperator(
                    spec=spec_doc, spec_file=spec_file, subject=f"Cut over {spec.name}?", body=ops.APPROVAL_BODY,
                    retries=3, retry_delay=timedelta(seconds=5), **common)  # deferrals can race under LocalExecutor
            elif t.kind == "fallback_gate":
                op = ops.FallbackDecisionOperator(
                    spec=spec_doc, spec_file=spec_file, subject=f"{spec.name}: roll back or decommission?",
                    body=ops.FALLBACK_BODY, retries=3, retry_delay=timedelta(seconds=5), **common)
            elif t.kind == "loaded_gate":
                op = ops.TargetLoadedGateOperator(
                    spec=spec_doc, spec_file=spec_file, subject=f"Is the target of {spec.name} loaded?",
                    body=ops.LOADED_BODY, retries=3, retry_delay=timedelta(seconds=5), **common)
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


def recopy_params(spec: MigrationSpec) -> dict[str, Param]:
    return {
        "tables": Param([], type="array", items={"type": "string"},
                        description="tables/collections to copy again (one per line)"),
        "segments": Param([], type="array", items={"type": "integer"},
                          description="export segments to copy again (their numbers, one per line)"),
        "keys_file": Param(None, type=["null", "string"], description=(
            "a key list in the migration's staging: JSON lines of source keys, or a validation's "
            "reports/differences-<at>.jsonl.gz")),
    }


def build_recopy_dag(spec: MigrationSpec, spec_file: str = "") -> DAG:
    """``recopy__<name>``: re-copy a subset of one migration on demand (a trigger form), while the migration's
    own run keeps capturing and applying; its other state is not touched."""
    dag = DAG(
        dag_id=f"recopy__{spec.name}",
        description=f"Turnout: copy part of {spec.name} again (tables, segments or a key list)",
        schedule=None, start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=1,
        tags=["turnout", "recopy", f"{spec.source.kind}-to-{spec.target.kind}", *spec.tags],
        params=recopy_params(spec), default_args={"owner": spec.owner, "retries": 2,
                                                  "retry_delay": timedelta(seconds=10)},
        doc_md=f"Re-copy for the Turnout migration from `{spec_file}`. A newer change applied by the migration is "
               "never overwritten: every key written is read again on the source.")
    with dag:
        ops.RecopyOperator(task_id="recopy", spec=spec.model_dump(mode="json"), spec_file=spec_file,
                           doc_md="re-read the named subset from the source and write it again")
    return dag


STUB_DIR = "_turnout_specs"
STUB = """# Generated by Turnout's loader (dags/turnout_migrations.py) for {spec}: one DAG file per spec, so that a
# broken spec is an import error of this file alone and takes no other migration's DAG with it. Do not edit.
from turnout_airflow.factory import spec_dag

spec_dag({spec!r}, globals())
"""


def spec_dag(spec_file: str, namespace: dict) -> str:
    """Build the DAG of one spec (a path relative to this DAG file's folder's parent, or absolute) into
    ``namespace``; a broken spec raises SpecError naming the file, line and key."""
    path = Path(spec_file)
    if not path.is_absolute():
        path = Path(namespace.get("__file__", ".")).resolve().parent.parent / path
    spec = load_spec(path)
    namespace[spec.dag_id] = build_dag(spec, str(path))
    namespace[f"recopy__{spec.name}"] = build_recopy_dag(spec, str(path))
    return spec.dag_id


def sync_spec_stubs(dags_dir: str | Path, spec_dir: str = "specs") -> list[Path]:
    """One generated DAG file per ``<spec_dir>/*.yaml`` in ``<dags_dir>/_turnout_specs/``, and none for a spec
    that is gone. Writes only what changed, so the files' mtimes (which Airflow watches) move only then."""
    dags = Path(dags_dir)
    stubs = dags / STUB_DIR
    stubs.mkdir(exist_ok=True)
    want = {}
    for yml in sorted((dags / spec_dir).glob("*.y*ml")):
        want[stubs / f"{yml.stem}.py"] = STUB.format(spec=f"{spec_dir}/{yml.name}")
    for f, text in want.items():
        if not f.exists() or f.read_text() != text:
            tmp = f.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(f)
    for f in stubs.glob("*.py"):
        if f not in want:
            f.unlink()
    return sorted(want)


def load_dags(spec_dir: str | Path, namespace: dict) -> list[str]:
    """The loader: keep one DAG file per spec (:func:`sync_spec_stubs`). Where the dags folder cannot be
    written (a read-only mount), build every spec's DAG here instead, a broken spec then standing in as the
    ``turnout__broken_specs`` import error; return the error messages."""
    spec_dir = Path(spec_dir)
    try:
        sync_spec_stubs(spec_dir.parent, spec_dir.name)
        return []
    except OSError as exc:
        import logging

        logging.getLogger(__name__).warning(
            "TURNOUT cannot write one DAG file per spec into %s (%s): building all specs in the loader, where one "
            "broken spec is an import error of the loader file", spec_dir.parent / STUB_DIR, exc)
    return build_all(spec_dir, namespace)


class BrokenSpecs(DAG):
    """Stands in for specs that did not load: Airflow records its validation error as the loader
    file's import error (naming every broken spec, its line and key), and keeps the good DAGs."""

    def validate(self):  # noqa: D102 - Airflow calls this while bagging
        raise SpecError("\n".join(self.doc_md.splitlines()[1:]))


def build_all(spec_dir: str | Path, namespace: dict) -> list[str]:
    """Build one DAG per ``*.yaml`` in spec_dir into ``namespace``; return the error messages."""
    errors = []
    for path in sorted(Path(spec_dir).glob("*.y*ml")):
        try:
            spec = load_spec(path)
            namespace[spec.dag_id] = build_dag(spec, str(path))
            namespace[f"recopy__{spec.name}"] = build_recopy_dag(spec, str(path))
        except SpecError as exc:
            errors.append(str(exc))
        except Exception as exc:  # a bug must not take the other migrations down either
            errors.append(f"{path}: {type(exc).__name__}: {exc}")
    if errors:
        namespace["turnout__broken_specs"] = BrokenSpecs(
            dag_id="turnout__broken_specs", schedule=None, start_date=datetime(2026, 1, 1),
            doc_md="Turnout specs that failed to load:\n" + "\n".join(errors))
    return errors
