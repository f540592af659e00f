"""Spec -> a plain task plan (ids, kinds, edges), testable without Airflow.

The plugin's DAG factory turns each entry into an operator. The order is the product's promise:
preflight -> start_cdc -> export (mapped) -> load (mapped) -> catch_up -> validate -> repair ->
approve_cutover -> cutover, with the capture running beside export and load from start_cdc on, the change apply
running from the end of the load until cutover stops it, and a sampled validation beside them until catch-up
ends. A CDC-only migration (``export.mode: none``) has no export and load: a person confirms the target was
loaded another way before the apply starts.
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
    cdc_only = spec.export.mode == "none"
    plan = [
        TaskSpec("preflight", "preflight", doc="reachability, key schema, stream state, target table, go/no-go"),
        TaskSpec("start_cdc", "start_cdc", ("preflight",), doc="record the stream position before the export"),
        TaskSpec("capture", "capture", ("start_cdc",), long_running=True,
                 doc="stream -> durable change log in staging, until cutover"),
    ]
    if cdc_only:
        # the target is loaded another way, from a snapshot taken after the recorded position: a change applied
        # before that load would be overwritten by it, so the apply starts once a person confirms the load
        plan.append(TaskSpec("confirm_target_loaded", "loaded_gate", ("start_cdc",),
                             doc="a person confirms the target holds a snapshot taken after the recorded position"))
        before_apply = "confirm_target_loaded"
    else:
        plan += [
            TaskSpec("plan_export", "plan_export", ("start_cdc",), doc=f"export units ({spec.export.mode})"),
            TaskSpec("export", "export", ("plan_export",), mapped_over="plan_export", doc="one task per segment"),
            TaskSpec("plan_load", "plan_load", ("export",), doc="group export chunks into load units"),
            TaskSpec("load", "load", ("plan_load",), mapped_over="plan_load", doc="transform + bulk load per unit"),
        ]
        before_apply = "load"
    plan += [
        TaskSpec("apply", "apply", (before_apply,), long_running=True,
                 doc="change log -> target, in lanes, until cutover"),
        TaskSpec("catch_up", "catch_up", (before_apply,), doc="waits (deferred) until lag stays under the threshold"),
    ]
    if spec.validation.sample_fraction > 0:
        plan.append(TaskSpec("sampled_validation", "sampled_validation", ("start_cdc",), long_running=True,
                             doc="samples loaded chunks and applied changes on both sides until catch-up ends"))
    plan.append(TaskSpec("validate", "validate", ("catch_up",),
                         doc="counts, segment digests, drill-down, expectations"))
    gate_after = "validate"
    if spec.repair.enabled:
        plan.append(TaskSpec("repair", "repair", ("validate",),
                             doc=f"re-write the differing keys from the source (up to {spec.repair.max_keys})"))
        gate_after = "repair"
    plan += [
        TaskSpec("approve_cutover", "approval", (gate_after,), doc="a person confirms writes are frozen"),
        TaskSpec("cutover", "cutover", ("approve_cutover",), doc="drain, final validation, stop capture, report"),
    ]
    if spec.fallback.enabled:  # the way back: target -> source from the freeze until a person decides
        plan += [
            TaskSpec("reverse_capture", "reverse_capture", ("cutover",), long_running=True,
                     doc="the target's changes -> the reverse change log, from the position recorded in the freeze"),
            TaskSpec("reverse_apply", "reverse_apply", ("cutover",), long_running=True,
                     doc="the reverse change log -> the source"),
            TaskSpec("fallback_decision", "fallback_gate", ("cutover",),
                     doc=f"a person decides: roll back or decommission (window {spec.fallback.window_hours:g} h)"),
            TaskSpec("fallback_end", "fallback_end", ("fallback_decision",),
                     doc="roll back (drain, prove the target's freeze, validate source = target) or decommission"),
        ]
    return plan


PROMISED_ORDER = ["preflight", "start_cdc", "export", "load", "catch_up", "validate", "repair", "approve_cutover",
                  "cutover"]
