"""Operators: each calls one engine phase and returns a small JSON summary (counts, positions).

Like the Amazon provider's transfer operators: keyword-only ``__init__`` that only stores arguments
(no I/O at parse time), ``template_fields``, and an ``execute()`` that only dispatches.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Sequence

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from turnout import layout, phases
from turnout.errors import LateWrites, TurnoutError

from .context import build_context
from .triggers import TurnoutWaitTrigger


class TurnoutOperator(BaseOperator):
    """Base of every Turnout phase operator.

    :param spec: the validated migration spec (a dict; carried in the serialized DAG so every worker runs
        exactly the spec the DAG was built from)
    :param spec_file: the YAML file the spec came from (named in error messages)
    """

    template_fields: Sequence[str] = ("spec_file",)
    ui_color = "#e8f1fb"
    phase = ""

    def __init__(self, *, spec: dict, spec_file: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.spec_file = spec_file

    def turnout_context(self, context, *, connections: bool = True):
        return build_context(self.spec, self.spec_file, context["params"], run_id=context["run_id"],
                             log=self.log, connections=connections)

    def execute(self, context) -> Any:
        if context["params"].get("dry_run") and self.phase != "preflight":
            raise AirflowSkipException("dry run: only preflight runs")
        ctx = self.turnout_context(context)
        try:
            return self.run_phase(ctx, context)
        finally:
            ctx.close()

    def run_phase(self, ctx, context) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class PreflightOperator(TurnoutOperator):
    phase = "preflight"

    def run_phase(self, ctx, context):
        summary = phases.preflight(ctx, dry_run=bool(context["params"].get("dry_run")))
        if summary.get("status") == "cutover_done":
            raise AirflowSkipException(f"migration already cut over at {summary.get('cutover_at')}: nothing to do")
        return {k: v for k, v in summary.items() if k != "source_schema"}  # the schema stays in staging


class StartCdcOperator(TurnoutOperator):
    phase = "start_cdc"

    def run_phase(self, ctx, context):
        return phases.start_cdc(ctx)


class PlanExportOperator(TurnoutOperator):
    """Lists the export units. In native mode it starts the export and defers until it has completed."""

    phase = "plan_export"

    def __init__(self, *, poll_seconds: float = 15.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.poll_seconds = poll_seconds

    def run_phase(self, ctx, context):
        if ctx.spec.export.mode == "native":
            phases.native_export_start(ctx)
            if phases.native_export_poll(ctx)["status"] != "COMPLETED":
                self.defer(trigger=TurnoutWaitTrigger(spec=self.spec, spec_file=self.spec_file,
                                                      params=dict(context["params"]), check="native_export",
                                                      poll_seconds=self.poll_seconds, run_id=context["run_id"]),
                           method_name="execute_complete")
        return phases.plan_export(ctx)

    def execute_complete(self, context, event: dict):
        if event.get("status") != "done":
            raise TurnoutError(event.get("message", "native export wait failed"))
        return phases.plan_export(self.turnout_context(context))


class ExportOperator(TurnoutOperator):
    """One scan segment (or native export file) -> chunks in staging.

    :param unit: the segment number (mapped from plan_export)
    """

    phase = "export"
    template_fields: Sequence[str] = ("spec_file", "unit")

    def __init__(self, *, unit: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.unit = unit

    def run_phase(self, ctx, context):
        return phases.export_segment(ctx, int(self.unit))


class PlanLoadOperator(TurnoutOperator):
    phase = "plan_load"

    def run_phase(self, ctx, context):
        return phases.plan_load(ctx)


class LoadOperator(TurnoutOperator):
    """Transform + bulk load one load unit (a group of export chunks).

    :param unit: the load unit (mapped from plan_load)
    """

    phase = "load"
    template_fields: Sequence[str] = ("spec_file", "unit")

    def __init__(self, *, unit: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.unit = unit

    def run_phase(self, ctx, context):
        ctx.staging.put_json(layout.load_running(int(self.unit)),
                             {**ctx.whoami(), "at": ctx.clock(), "try": context["ti"].try_number})
        return phases.load_chunk(ctx, int(self.unit))


class CaptureOperator(TurnoutOperator):
    """Long-running: stream -> durable change log, from start_cdc until cutover (or a reject) stops it."""

    phase = "capture"

    def run_phase(self, ctx, context):
        return phases.run_capture(ctx)


class ApplyOperator(TurnoutOperator):
    """Long-running: change log -> target, in lanes, from the end of the load until cutover."""

    phase = "apply"

    def run_phase(self, ctx, context):
        return phases.run_apply(ctx)


class CatchUpOperator(TurnoutOperator):
    """Waits, deferred, until the lag has stayed under the threshold (catch_up.stable_seconds)."""

    phase = "catch_up"

    def __init__(self, *, poll_seconds: float = 5.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.poll_seconds = poll_seconds

    def run_phase(self, ctx, context):
        self.defer(trigger=TurnoutWaitTrigger(spec=self.spec, spec_file=self.spec_file, params=dict(context["params"]),
                                              check="catch_up", poll_seconds=self.poll_seconds,
                                              run_id=context["run_id"]),
                   method_name="execute_complete")

    def execute_complete(self, context, event: dict):
        if event.get("status") != "done":
            raise TurnoutError(event.get("message", "catch-up failed"))
        s = event["summary"]
        self.log.info("TURNOUT phase=catch_up status=caught_up lag_s=%s backlog=%s stable_for=%s", s["lag_seconds"],
                      s["backlog"], s["stable_for"])
        for ns, g in (s.get("namespaces") or {}).items():  # per namespace, like the seed's --watch-status
            self.log.info("TURNOUT phase=catch_up namespace=%s time_gap_in_seconds=%s", ns, g["time_gap_in_seconds"])
        keep = ("lag_seconds", "backlog", "captured", "applied", "stable_for", "gap_in_seconds", "namespaces")
        return {k: s[k] for k in keep if k in s}


class ValidateOperator(TurnoutOperator):
    phase = "validate"

    def run_phase(self, ctx, context):
        return phases.validate(ctx)


class CutoverOperator(TurnoutOperator):
    """After approval: drain, stop capture and apply (a handshake), prove the freeze, validate the quiet target,
    report. Writes made after the approval fail it without retries: a retry would find the same writes."""

    phase = "cutover"

    def run_phase(self, ctx, context):
        answer = context["ti"].xcom_pull(task_ids="approve_cutover") or {}
        who = (answer.get("responded_by_user") or {}).get("name") or (answer.get("responded_by_user") or {}).get("id")
        try:
            return phases.cutover(ctx, approved_by=who, approved_at=_timestamp(answer.get("responded_at")))
        except LateWrites as exc:
            raise AirflowFailException(str(exc)) from None


def _timestamp(value) -> float | None:
    """The approval's responded_at (a datetime, or its ISO text once through XCom) as epoch seconds."""
    from datetime import datetime

    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return value.timestamp() if isinstance(value, datetime) else None


class CutoverApprovalOperator(ApprovalOperator):
    """The standard provider's ApprovalOperator; on Reject it also stops the capture and apply."""

    def __init__(self, *, spec: dict, spec_file: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.spec_file = spec_file

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        chosen = (event.get("chosen_options") or [None])[0]
        if chosen == self.REJECT:
            ctx = build_context(self.spec, self.spec_file, context["params"], run_id=context["run_id"], log=self.log,
                                connections=False)
            phases.request_stop(ctx, "cutover rejected")
        return super().execute_complete(context=context, event=event)


APPROVAL_BODY = """\
**Cutover of `{{ dag.dag_id }}`** — approve only once the application's writes to the source are stopped.

| | |
|---|---|
| lag | {{ (ti.xcom_pull(task_ids='catch_up') or {}).get('lag_seconds') }} s |
| backlog | {{ (ti.xcom_pull(task_ids='catch_up') or {}).get('backlog') }} changes |
| changes captured / applied | {{ (ti.xcom_pull(task_ids='catch_up') or {}).get('captured') }} / \
{{ (ti.xcom_pull(task_ids='catch_up') or {}).get('applied') }} |
| source / target items | {{ (ti.xcom_pull(task_ids='validate') or {}).get('source_count') }} / \
{{ (ti.xcom_pull(task_ids='validate') or {}).get('target_count') }} |
| validation | {{ 'OK' if (ti.xcom_pull(task_ids='validate') or {}).get('ok') else 'NOT OK' }}, \
{{ (ti.xcom_pull(task_ids='validate') or {}).get('differences') }} differences; \
report {{ (ti.xcom_pull(task_ids='validate') or {}).get('report') }} |

Approve: Turnout drains the change log until nothing new arrives, validates again, stops the capture
and writes the cutover report. Reject: the run ends without cutover and the capture stops.
"""

RETRY_LONG = {"retries": 10, "retry_delay": timedelta(seconds=5)}
