"""Spec -> a plain task plan (ids, kinds, edges), testable without Airflow.

The plugin's DAG factory turns each entry into an operator. The order is the product's promise:
preflight -> start_cdc -> export (mapped) -> load (mapped) -> catch_up -> validate -> approve_cutover
-> cutover, with the capture running beside export and load from start_cdc on, and the change apply
running from the end of the load until cutover stops it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import MigrationSpec


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    kind: str
    upstream: tuple[str, ...] = ()
    mapped_over: str | None = None  # task id whose XCom list this task is mapped over
    long_running: bool = False
    doc: str = ""


def task_plan(spec: MigrationSpec) -> list[TaskSpec]:
    return [
        TaskSpec("preflight", "preflight", doc="reachability, key schema, stream state, target table, go/no-go"),
        TaskSpec("start_cdc", "start_cdc", ("preflight",), doc="record the stream position before the export"),
        TaskSpec("capture", "capture", ("start_cdc",), long_running=True,
                 doc="stream -> durable change log in staging, until cutover"),
        TaskSpec("plan_export", "plan_export", ("start_cdc",), doc=f"export units ({spec.export.mode})"),
        TaskSpec("export", "export", ("plan_export",), mapped_over="plan_export", doc="one task per segment"),
        TaskSpec("plan_load", "plan_load", ("export",), doc="group export chunks into load units"),
        TaskSpec("load", "load", ("plan_load",), mapped_over="plan_load", doc="transform + bulk load per unit"),
        TaskSpec("apply", "apply", ("load",), long_running=True, doc="change log -> target, in lanes, until cutover"),
        TaskSpec("catch_up", "catch_up", ("load",), doc="waits (deferred) until lag stays under the threshold"),
        TaskSpec("validate", "validate", ("catch_up",), doc="counts, segment digests, drill-down, expectations"),
        TaskSpec("approve_cutover", "approval", ("validate",), doc="a person confirms writes are frozen"),
        TaskSpec("cutover", "cutover", ("approve_cutover",), doc="drain, final validation, stop capture, report"),
    ]


PROMISED_ORDER = ["preflight", "start_cdc", "export", "load", "catch_up", "validate", "approve_cutover", "cutover"]
