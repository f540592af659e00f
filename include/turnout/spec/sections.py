"""The spec's tunable sections: export, load, rate limits, capture, apply, catch-up, validation, cutover, staging."""

from __future__ import annotations

import os
from typing import Literal, Optional, Union

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from .sides import Strict


class Export(Strict):
    mode: Literal["scan", "native", "none"] = Field(
        default="scan", description="scan: parallel Scan; native: read an ExportTableToPointInTime export in S3; "
        "none: CDC only (the target is loaded another way, from a snapshot taken after the recorded position: "
        "the apply waits for a person to confirm it is loaded)"
    )
    segments: Union[int, Literal["auto"]] = "auto"
    target_segment_bytes: int = Field(default=128 * 1024 * 1024, gt=0, description="size per segment when auto")
    max_segments: int = Field(default=1000, gt=0)
    chunk_items: int = Field(default=10_000, gt=0, description="items per staging chunk file")
    native_s3_bucket: Optional[str] = None
    native_s3_prefix: str = "turnout-export"
    native_export_arn: Optional[str] = Field(default=None, description="read this existing export instead of starting one")

    @field_validator("segments")
    @classmethod
    def _segments(cls, v):
        if isinstance(v, int) and not 1 <= v <= 1_000_000:
            raise ValueError("segments must be between 1 and 1000000 (DynamoDB's TotalSegments limit)")
        return v

    @model_validator(mode="after")
    def _native(self):
        if self.mode == "native" and not (self.native_s3_bucket or self.native_export_arn):
            raise ValueError("mode native needs native_s3_bucket (or native_export_arn)")
        return self


class Load(Strict):
    max_tasks: int = Field(default=256, gt=0, description="at most this many mapped load tasks (chunks are grouped)")
    concurrency: int = Field(default=8, gt=0, description="concurrent batch writers inside one load task")


class RateLimits(Strict):
    read_items_per_second: float = Field(default=0, ge=0, description="0 = unlimited; shared by all export tasks")
    write_items_per_second: float = Field(default=0, ge=0, description="0 = unlimited; shared by all load tasks")
    parallel_tasks: int = Field(default=4, gt=0, description="mapped tasks running at once (the rate is split between them)")
    write_units_per_second: float = Field(default=0, ge=0, description=(
        "0 = unlimited; the target's own capacity units per second (DynamoDB: WCU, one per started KB of each "
        "item), shared by all load tasks"))
    read_units_per_second: float = Field(default=0, ge=0, description=(
        "0 = unlimited; the source's own read units per second (DynamoDB: RCU, one per started 4 KB a Scan "
        "returns, half when eventually consistent), shared by all export tasks"))
    source_read_percent: float = Field(default=0, ge=0, le=100, description=(
        "0 = none; at most this percentage of the source's read capacity (provisioned, warm or on-demand maximum, "
        "read at preflight), shared by all export tasks; with read_units_per_second too, the lower one holds"))
    target_write_percent: float = Field(default=0, ge=0, le=100, description=(
        "0 = none; at most this percentage of the target's write capacity (DynamoDB: WCU; Cosmos: the "
        "container's RU/s offer), read at preflight; with write_units_per_second too, the lower one holds"))
    adaptive: bool = Field(default=True, description=(
        "within the write budget in units, back off when the target throttles and climb back when it stops (AIMD)"))


class Plan(Strict):
    """The capacity and cost plan every preflight (and a dry run) prints."""

    source_writes_per_second: float = Field(default=0, ge=0, description=(
        "the source's peak writes per second, to check that the apply's budget can catch up (0 = not known)"))
    prices: dict[str, float] = Field(default_factory=dict, description=(
        "overrides of include/turnout/data/pricing.json (USD), e.g. {dynamodb_on_demand_write_per_million: 0.7}"))

    @model_validator(mode="after")
    def _known(self):
        from ..costplan import prices

        prices(self.prices)  # an unknown price name is refused at spec load, naming the known ones
        return self


class Capture(Strict):
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    max_records_per_file: int = Field(default=1000, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)


class Apply(Strict):
    lanes: int = Field(default=8, gt=0, le=256, description="parallel apply lanes (by a stable hash of the key)")
    poll_interval_seconds: float = Field(default=1.0, gt=0)


class CatchUp(Strict):
    lag_threshold_seconds: float = Field(default=60, gt=0, description="cutover waits until lag stays under this")
    stable_seconds: float = Field(default=30, ge=0, description="...for this long")
    timeout_hours: float = Field(default=72, gt=0)


class Validation(Strict):
    buckets: int = Field(default=256, gt=0, le=65536, description="digest segments per side")
    recheck_rounds: int = Field(default=5, ge=0)
    recheck_wait_seconds: float = Field(default=5, ge=0)
    expectation_sample: int = Field(default=100_000, gt=0, description="target items checked by Great Expectations")
    max_reported_keys: int = Field(default=1000, gt=0)
    max_drill_keys: int = Field(default=200_000, gt=0, description=(
        "the most keys the drill-down holds in memory at once; beyond it, it rescans in rounds"))
    sample_fraction: float = Field(default=0.05, ge=0, le=1, description=(
        "sampled validation while the migration runs: this fraction of the loaded chunks and applied change-log "
        "files has its keys compared on both sides (0 = off)"))
    sample_keys_per_round: int = Field(default=2000, gt=0, description="keys one sampling round reads at most")
    sample_interval_seconds: float = Field(default=15, gt=0, description="pause between two sampling rounds")
    sample_min_recheck_seconds: float = Field(default=10, ge=0, description=(
        "a sampled key that differs is rechecked after the current lag, and at least this long after"))
    sample_fail_after: int = Field(default=0, ge=0, description=(
        "fail fast: stop the run once this many sampled keys differ persistently (0 = report only)"))


class Repair(Strict):
    enabled: bool = Field(default=True, description=(
        "the repair step: differing keys found before the approval are re-read from the source and written again"))
    max_keys: int = Field(default=1000, ge=0, description=(
        "repair at most this many keys by itself; above it, the approval asks (repair them, re-copy their "
        "segments, or reject)"))
    rounds: int = Field(default=5, gt=0, description="source reads per key until what was written stays current")


class Cutover(Strict):
    quiet_seconds: float = Field(default=10, ge=0, description="drain until no new change arrives for this long")
    drain_timeout_seconds: float = Field(default=1800, gt=0)
    late_writes: Literal["fail", "apply"] = Field(
        default="fail", description="changes the source stamped after the approval (the write freeze): fail the "
        "cutover naming their keys (the freeze did not hold), or apply and report them")
    clock_skew_seconds: float = Field(
        default=2, ge=0, description="a change counts as after the freeze when the source stamped it more than this "
        "after the approval (the source's and Airflow's clocks may differ by this much)")


class Fallback(Strict):
    enabled: bool = Field(default=False, description=(
        "after cutover, replicate the target's changes back into the source until a person decides: roll back "
        "(the application can go back) or decommission"))
    window_hours: float = Field(default=72, gt=0, description=(
        "how long the way back is kept open; at its end the decision is asked for again (never taken silently)"))


class NotifierSpec(Strict):
    webhook: Optional[str] = Field(default=None, description=(
        "an http(s) URL: Turnout's WebhookNotifier posts the alert there as JSON"))
    notifier: Optional[str] = Field(default=None, description=(
        "the import path of an Airflow BaseNotifier class (Slack, email, SNS, Teams ... from their providers)"))
    args: dict = Field(default_factory=dict, description="keyword arguments for that notifier's constructor")

    @model_validator(mode="after")
    def _one(self):
        if bool(self.webhook) == bool(self.notifier):
            raise ValueError("a notifier is either {webhook: URL} or {notifier: import.path.Class, args: {...}}")
        if self.webhook and not self.webhook.startswith(("http://", "https://")):
            raise ValueError(f"webhook {self.webhook!r} is not an http(s) URL")
        if self.webhook and self.args:
            raise ValueError("args go with notifier:, not with webhook:")
        return self


class Alerts(Strict):
    lag_seconds_over: Optional[float] = Field(default=None, gt=0, description=(
        "page when the change lag stays above this many seconds (once the apply runs; None = off)"))
    for_seconds: float = Field(default=0, ge=0, description="...for at least this long")
    on_dead_letter: bool = Field(default=True, description="page when a record goes to the dead-letter store")
    on_validation_failure: bool = Field(default=True, description=(
        "page when a validation, the repair or the sampled validation finds the target wrong"))
    notifiers: list[NotifierSpec] = Field(default_factory=list, description=(
        "called once when an alert starts and once when it clears (no notifiers: alerts show in the view only)"))
    view_url: Optional[str] = Field(default=None, description=(
        "the Migrations view's address in alert messages (default: Airflow's [api] base_url + the plugin's path)"))


class StagingSpec(Strict):
    url: str = Field(description="s3://bucket/prefix, or an absolute local path (single machine only)")
    conn_id: Optional[str] = Field(default=None, description="aws connection for s3:// staging")
    lease_seconds: float = Field(default=30.0, gt=0, description=(
        "the lease of a staging writer (capture, apply, export and load units): a new try of a task waits out "
        "what is left of its predecessor's lease before writing to the target; a write batch must finish "
        "within 3/4 of it"))

    @field_validator("conn_id")
    @classmethod
    def _conn(cls, v):
        return v or None  # an empty ${VAR:-} means "no connection": boto3's default credentials

    @field_validator("url")
    @classmethod
    def _url(cls, v):
        if v.startswith("s3://"):
            if len(v) <= 5 or v[5] == "/":
                raise ValueError("s3:// url names no bucket")
            return v
        path = v[7:] if v.startswith("file://") else v
        if not os.path.isabs(path):
            raise ValueError(f"local staging path {v!r} must be absolute (every task must see the same place)")
        return v
