"""The phases, one module each, in the order a migration runs them. Each reads and writes staging only (keys in
:mod:`turnout.layout`, state records in :mod:`turnout.state`), asks only the ports of :mod:`turnout.ports`,
returns a small JSON summary (counts, positions — never data), and can be killed at any moment and run again.

    preflight -> start_cdc -> export (native_export) -> load -> capture / apply -> catch_up -> validation
    -> cutover; reconcile and indexes where the route's capabilities call for them.
"""

from __future__ import annotations

from ..status import lag_status
from ._common import PROGRESS_SECONDS, cutover_done, dead_letter, dead_letter_count
from .apply import confirm_target_loaded, run_apply
from .capture import run_capture
from .catch_up import catch_up_check
from .cutover import cutover, drain, request_stop, wait_stopped
from .export import export_segment, plan_export, read_chunk
from .fallback import decommission, fallback_state, reverse_context, rollback
from .indexes import build_indexes
from .load import load_chunk, plan_load
from .native_export import native_export_poll, native_export_start
from .preflight import preflight
from .reconcile import reconcile_deletes
from .recopy import recopy, segments_of_differences
from .redrive import redrive
from .repair import repair
from .sampled import run_sampled_validation
from .start_cdc import start_cdc
from .validation import validate

__all__ = ["preflight", "start_cdc", "plan_export", "export_segment", "read_chunk", "native_export_start",
           "native_export_poll", "plan_load", "load_chunk", "run_capture", "run_apply", "catch_up_check",
           "validate", "reconcile_deletes", "build_indexes", "request_stop", "drain", "wait_stopped", "cutover",
           "cutover_done", "redrive", "repair", "recopy", "run_sampled_validation", "confirm_target_loaded", "reverse_context", "fallback_state", "rollback", "decommission", "segments_of_differences", "dead_letter", "dead_letter_count", "lag_status", "PROGRESS_SECONDS"]
