"""catch_up: the gate that waits until the change log is applied with a small, stable lag."""

from __future__ import annotations

from .. import layout, state
from ..errors import DeadLetterError, TurnoutError, ValidationFailed
from ..runtime import Context
from ..status import lag_status, record_lag
from ._common import dead_letter_count
from .redrive import redrive
from .sampled import fail_fast_reason, request_sampling_stop


def catch_up_check(ctx: Context, look: dict) -> tuple[bool, dict]:
    """One look for the catch-up gate. ``look`` carries ``under_since`` between looks.

    Done when the lag (and, where the source has groups, the per-group gap) has stayed under the threshold
    for stable_seconds with both the capture and the apply alive. Raises on dead letters (fail closed) or
    when the timeout has passed."""
    cu = ctx.spec.catch_up
    s = lag_status(ctx)
    dl = dead_letter_count(ctx) if s["dead_letter_files"] else {}
    if dl.get("capture") or dl.get("apply"):  # repaired from the source where the key is known
        redrive(ctx)
        dl = dead_letter_count(ctx)
    if dl:
        raise DeadLetterError(f"records in the dead-letter store ({dl}); see {ctx.staging.url}/deadletter/")
    why = fail_fast_reason(state.load(ctx.staging, layout.SAMPLED), ctx.spec.validation.sample_fail_after)
    if why:
        raise ValidationFailed(f"{why}; report {ctx.staging.url}/{layout.SAMPLED}")
    alive = (s["capture_heartbeat_age"] is not None and s["capture_heartbeat_age"] < 60
             and s["apply_heartbeat_age"] is not None and s["apply_heartbeat_age"] < 60)
    under = alive and max(s["lag_seconds"], s.get("gap_in_seconds", 0)) <= cu.lag_threshold_seconds
    if under:
        look.setdefault("under_since", s["at"])
    else:
        look.pop("under_since", None)
    look.setdefault("first_at", s["at"])
    if s["at"] - look["first_at"] > cu.timeout_hours * 3600:
        raise TurnoutError(f"catch-up did not settle within {cu.timeout_hours} h (lag {s['lag_seconds']} s)")
    stable_for = s["at"] - look["under_since"] if "under_since" in look else 0.0
    s.update(alive=alive, stable_for=round(stable_for, 1), threshold=cu.lag_threshold_seconds)
    record_lag(ctx.staging, s)
    done = under and stable_for >= cu.stable_seconds
    if done:
        request_sampling_stop(ctx, "caught up")
    return done, s
