"""Operators: each calls one engine phase and returns a small JSON summary (counts, positions).

Like the Amazon provider's transfer operators: keyword-only ``__init__`` that only stores arguments
(no I/O at parse time), ``template_fields``, and an ``execute()`` that only dispatches.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Sequence

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from turnout import layout, phases
from turnout.errors import LateWrites, TurnoutError, ValidationFailed

from .context import build_context
from .observe import Observer
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

    reverse = False  # the fallback's tasks run the phase on the reverse migration (target -> source)
    observe = True  # metrics and alerts after every progress line and at the end (not in the many mapped tasks)

    def execute(self, context) -> Any:
        if context["params"].get("dry_run") and self.phase != "preflight":
            raise AirflowSkipException("dry run: only preflight runs")
        ctx = self.turnout_context(context)
        spec = ctx.spec
        if self.reverse:
            phases.fallback_state(ctx)  # the cutover recorded the target's position, or a clear error
            ctx = phases.reverse_context(ctx)
        # metrics and alerts of what this task runs: the way back's tasks watch the reverse (tagged so)
        observer = Observer(spec, ctx.staging, dag_id=self.dag_id, direction="reverse" if self.reverse else "")
        if self.observe:
            ctx.observers.append(observer.on_progress)
        failure = None
        try:
            return self.run_phase(ctx, context)
        except TurnoutError as exc:
            if self.phase in VALIDATION_PHASES and (self.phase != "cutover" or isinstance(exc, ValidationFailed)):
                failure = {"phase": self.phase, "error": str(exc)[:1000]}
            raise
        finally:
            ctx.close()
            _look_last(observer, failure, self.log, full=self.observe)

    def run_phase(self, ctx, context) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


VALIDATION_PHASES = ("validate", "repair", "cutover")  # a failure here (in cutover: its validation's) alerts


def _look_last(observer: Observer, failure: dict | None, log, full: bool = True) -> None:
    """The task's last look (metrics, alerts; the mapped tasks: only their throttles); never why a task fails."""
    try:
        if full:
            observer.look(force=True, task_failure=failure)
        else:
            observer.emit_throttles()
    except Exception as exc:  # noqa: BLE001
        log.warning("TURNOUT metrics/alerts: %s: %s", type(exc).__name__, exc)


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
    observe = False
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
    observe = False
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


class ReverseCaptureOperator(CaptureOperator):
    """Long-running, after cutover: the target's changes into the reverse change log, until the fallback ends."""

    reverse = True


class ReverseApplyOperator(ApplyOperator):
    """Long-running, after cutover: the reverse change log into the source, until the fallback ends."""

    reverse = True


ROLL_BACK, DECOMMISSION = "Roll back", "Decommission"


class FallbackDecisionOperator(HITLOperator):
    """The way back's gate: Roll back (the application has stopped writing to the target) or Decommission. It has
    no timeout: at the end of the window it is still asking, and the Migrations view says the window ended."""

    def __init__(self, *, spec: dict, spec_file: str = "", **kwargs) -> None:
        super().__init__(options=[ROLL_BACK, DECOMMISSION], **kwargs)
        self.spec = spec
        self.spec_file = spec_file


class FallbackEndOperator(TurnoutOperator):
    """Carries out the fallback decision: roll back or decommission."""

    phase = "fallback_end"

    def run_phase(self, ctx, context):
        answer = context["ti"].xcom_pull(task_ids="fallback_decision") or {}
        chosen = (answer.get("chosen_options") or [None])[0]
        who, at = _answered(answer)
        try:
            if chosen == ROLL_BACK:
                return phases.rollback(ctx, approved_by=who, approved_at=at)
            if chosen == DECOMMISSION:
                return phases.decommission(ctx, approved_by=who, approved_at=at)
        except LateWrites as exc:
            raise AirflowFailException(str(exc)) from None
        raise AirflowFailException(f"fallback_decision gave no answer ({answer!r}): nothing is rolled back or "
                                   "decommissioned; clear fallback_decision to ask again")


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
        return phases.validate(ctx, repair_after=ctx.spec.repair.enabled)


class RepairOperator(TurnoutOperator):
    """Re-writes the keys validation found differing (up to repair.max_keys), then validates them again."""

    phase = "repair"

    def run_phase(self, ctx, context):
        return phases.repair(ctx)


class SampledValidationOperator(TurnoutOperator):
    """Long-running: samples loaded chunks and applied changes on both sides until catch-up has passed."""

    phase = "sampled_validation"

    def run_phase(self, ctx, context):
        return phases.run_sampled_validation(ctx)


class RecopyOperator(TurnoutOperator):
    """Re-copies the tables/collections, export segments or key list named in the run's params, while the
    migration's capture and apply keep running."""

    phase = "recopy"

    def run_phase(self, ctx, context):
        p = context["params"]
        return phases.recopy(ctx, tables=_listed(p.get("tables")), segments=[int(x) for x in _listed(p.get("segments"))],
                             keys_file=p.get("keys_file") or None)


def _listed(value) -> list:
    """A form field as a list: a list, or text with one item per line or comma."""
    if value in (None, ""):
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if v not in (None, "")]
    return [v.strip() for v in str(value).replace("\n", ",").split(",") if v.strip()]


class CutoverOperator(TurnoutOperator):
    """After approval: drain, stop capture and apply (a handshake), prove the freeze, validate the quiet target,
    report. Writes made after the approval fail it without retries: a retry would find the same writes."""

    phase = "cutover"

    def run_phase(self, ctx, context):
        answer = context["ti"].xcom_pull(task_ids="approve_cutover") or {}
        who, at = _answered(answer)
        try:
            return phases.cutover(ctx, approved_by=who, approved_at=at,
                                  then=answer.get("then"))
        except LateWrites as exc:
            raise AirflowFailException(str(exc)) from None


def _answered(answer: dict) -> tuple[str | None, float | None]:
    """Who answered a HITL question (name, else id) and when (epoch seconds)."""
    user = answer.get("responded_by_user") or {}
    return user.get("name") or user.get("id"), _timestamp(answer.get("responded_at"))


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


REPAIR_ALL = "Repair them all, then cut over"
RECOPY_SEGMENTS = "Re-copy their segments, then cut over"
THEN = {REPAIR_ALL: "repair", RECOPY_SEGMENTS: "recopy"}


def approval_options(repair: dict | None) -> list[str]:
    """Approve / Reject; when the repair step found more differing keys than it repairs by itself, Approve is
    not offered (the target is known to differ): repair them, re-copy their segments, or reject."""
    if (repair or {}).get("status") == "over_limit":
        return [REPAIR_ALL, RECOPY_SEGMENTS, ApprovalOperator.REJECT]
    return [ApprovalOperator.APPROVE, ApprovalOperator.REJECT]


class CutoverApprovalOperator(ApprovalOperator):
    """The standard provider's ApprovalOperator; on Reject it also stops the capture and apply. When the repair
    step left more keys than ``repair.max_keys``, it asks "repair them all" / "re-copy their segments" / reject
    instead; either of the first two approves the cutover, which repairs after the write freeze."""

    def __init__(self, *, spec: dict, spec_file: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.spec_file = spec_file

    def execute(self, context) -> Any:
        if "repair" in self.upstream_task_ids:
            self.options = approval_options(context["ti"].xcom_pull(task_ids="repair"))
        return super().execute(context)

    def validate_chosen_options(self, chosen_options: list[str]) -> None:
        if diff := set(chosen_options) - {self.APPROVE, self.REJECT, *THEN}:
            raise ValueError(f"Responses {diff} not in {self.options}")

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        chosen = (event.get("chosen_options") or [None])[0]
        if "error" not in event and chosen is not None and "repair" in self.upstream_task_ids:
            offered = approval_options(context["ti"].xcom_pull(task_ids="repair"))
            if chosen not in offered:  # e.g. Approve on a target known to differ, through the API
                raise ValueError(f"Response {chosen!r} was not offered: {offered}")
        if chosen == self.REJECT:
            ctx = build_context(self.spec, self.spec_file, context["params"], run_id=context["run_id"], log=self.log,
                                connections=False)
            phases.request_stop(ctx, "cutover rejected")
        then = THEN.get(chosen or "")
        if then:  # an approval of the cutover, with the repair to run after the freeze
            self.log.info("TURNOUT approval: %r: the cutover will %s after the write freeze", chosen, then)
            event = {**event, "chosen_options": [self.APPROVE]}
        ret = super().execute_complete(context=context, event=event)
        if then:
            ret = {**ret, "chosen_options": [chosen], "then": then}
            self.hitl_summary_extra["chosen_options"] = [chosen]
        return ret


class TargetLoadedGateOperator(ApprovalOperator):
    """CDC-only migrations: a person confirms the target holds a snapshot taken after the recorded position (the
    apply starts then); Reject stops the capture."""

    def __init__(self, *, spec: dict, spec_file: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.spec_file = spec_file

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        ret = super().execute_complete(context=context, event=event)  # raises on a timeout or an error event
        chosen = ret["chosen_options"][0]
        ctx = build_context(self.spec, self.spec_file, context["params"], run_id=context["run_id"], log=self.log,
                            connections=False)
        if chosen == self.APPROVE:
            phases.confirm_target_loaded(ctx, by=_answered(ret)[0])
        else:
            phases.request_stop(ctx, "target load not confirmed")
        return ret


FALLBACK_BODY = """\
**The way back for `{{ dag.dag_id }}`** — the cutover is done and every change made on the target replicates back
into the source.

| | |
|---|---|
| window ends | {{ (ti.xcom_pull(task_ids='cutover') or {}).get('fallback', {}).get('window_ends_at') }} (epoch s) |
| target position recorded in the freeze | {{ (ti.xcom_pull(task_ids='cutover') or {}).get('fallback', {}).get('position') }} |

**Roll back**: approve only once the application has stopped writing to the target. Turnout drains the reverse,
proves nothing was written to the target after this answer, validates the source against the target and reports;
the application can then go back to the source. **Decommission**: stop the way back.
"""


LOADED_BODY = """\
**CDC-only migration `{{ dag.dag_id }}`** (`export.mode: none`): Turnout recorded the change position at
{{ (ti.xcom_pull(task_ids='start_cdc') or {}).get('recorded_at') }} (epoch seconds)
and captures every change since. Load the target another way (an import from S3, a restored backup) **from a
snapshot taken after that position**, then approve: the apply starts and replays every change since the position
(a change applied before the load would be overwritten by it). Reject stops the capture.
"""


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
| repair | {{ (ti.xcom_pull(task_ids='repair') or {}).get('status', '-') }}: \
{{ (ti.xcom_pull(task_ids='repair') or {}).get('repaired', 0) }} keys repaired of \
{{ (ti.xcom_pull(task_ids='repair') or {}).get('pending', 0) }} differing; report \
{{ (ti.xcom_pull(task_ids='repair') or {}).get('report', '-') }} |
| validation | {{ 'OK' if (ti.xcom_pull(task_ids='validate') or {}).get('ok') else 'OK after the repair' if \
(ti.xcom_pull(task_ids='repair') or {}).get('status') == 'repaired' else 'NOT OK' }}, \
{{ (ti.xcom_pull(task_ids='validate') or {}).get('differences') }} differences; \
report {{ (ti.xcom_pull(task_ids='validate') or {}).get('report') }} |

If the repair step found more differing keys than it repairs by itself (`repair.max_keys`), Approve is not offered:
choose to repair them all or to re-copy the export segments that hold them — either after the freeze, before the
final validation — or reject.

Approve: Turnout drains the change log until nothing new arrives, validates again, stops the capture
and writes the cutover report. Reject: the run ends without cutover and the capture stops.
"""

RETRY_LONG = {"retries": 10, "retry_delay": timedelta(seconds=5)}
