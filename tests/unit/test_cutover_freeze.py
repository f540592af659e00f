"""The cutover proves the write freeze: a change the source stamped after the approval fails the cutover naming its
key (or, with cutover.late_writes: apply, is kept and reported); the final validation runs on a quiet target
(after capture and apply stopped) without waiting rechecks. Staging is a real local directory; the change log is
written by the engine's own writer, the source and sink are stand-ins (only their capabilities are asked)."""

from __future__ import annotations

import logging

import pytest

from turnout import changelog, layout
from turnout.errors import LateWrites
from turnout.phases import cutover
from turnout.ports import Change, SourceCapabilities
from turnout.runtime import Context
from turnout.spec import parse_spec
from turnout.staging import LocalStaging

FREEZE = 1_800_000_000.0


class Source:
    def __init__(self, stamps: bool = True):
        self.capabilities = SourceCapabilities(reports_deletes=True, export_kinds=("scan",), ordering="test",
                                               stamps_changes=stamps)

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def no_audit_report(monkeypatch):
    """The audit report reads a whole migration's staging; this test's staging holds only the live part."""
    import importlib

    mod = importlib.import_module("turnout.phases.cutover")
    monkeypatch.setattr(mod, "write_report", lambda ctx, stage, approval: {"html": "-", "json": "-"})


def ctx_for(tmp_path, late_writes="fail", stamps=True, stamped=()):
    spec = parse_spec(f"""\
name: freeze
source: {{kind: dynamodb, conn_id: s, table: src}}
target: {{kind: dynamodb, conn_id: t, table: dst}}
staging: {{url: '{tmp_path}'}}
cutover: {{quiet_seconds: 0, late_writes: {late_writes}}}
""")
    now = FREEZE + 60
    st = LocalStaging(tmp_path)
    ctx = Context(spec=spec, staging=st.child("freeze"), source_config=None, target_config=None,
                  log=logging.getLogger("turnout.test"), clock=lambda: now)
    ctx.__dict__["source"] = Source(stamps)
    changes = [Change(key={"pk": {"S": f"k{i}"}}, op="put", image={"pk": {"S": f"k{i}"}}, version=[i],
                      created_at=t, origin=f"s/{i}") for i, t in enumerate(stamped)]
    changelog.write_file(ctx.staging, 0, changes, captured_at=FREEZE + 30)
    n = len(changes)
    ctx.staging.put_json(layout.CAPTURE_CHECKPOINT, {"records": n, "next_file": 1})
    ctx.staging.put_json(layout.APPLY_CHECKPOINT, {"consumed": n, "next_file": 1, "newest_ts": FREEZE})
    import time

    hb = {"at": time.time(), "tip_poll_at": FREEZE + 50, "stopped": True, "next_file": 1}
    ctx.staging.put_json(layout.CAPTURE_HEARTBEAT, hb)
    ctx.staging.put_json(layout.APPLY_HEARTBEAT, hb)
    calls = []

    def validate(c, **kw):
        calls.append(kw)
        return {"ok": True, "differences": 0}

    return ctx, validate, calls


def test_a_change_stamped_after_the_approval_fails_the_cutover_naming_its_key(tmp_path):
    ctx, validate, calls = ctx_for(tmp_path, stamped=[FREEZE - 5, FREEZE + 10])
    with pytest.raises(LateWrites, match=r"1 changes to 1 keys were made on the source after the approval.*k1"):
        cutover(ctx, approved_by="ops", approved_at=FREEZE, validate_fn=validate)
    rep = ctx.staging.get_json(layout.LATE_WRITES_REPORT)
    assert rep["count"] == 1 and rep["first_keys"] == [ctx.source_codec.key_text({"pk": {"S": "k1"}})]
    assert ctx.staging.get_json(layout.CUTOVER) is None and not calls  # no success recorded, nothing validated


def test_with_late_writes_apply_they_are_kept_and_reported(tmp_path):
    ctx, validate, calls = ctx_for(tmp_path, late_writes="apply", stamped=[FREEZE + 10, FREEZE + 11])
    out = cutover(ctx, approved_by="ops", approved_at=FREEZE, validate_fn=validate)
    assert out["changes_after_freeze"] == 2 and len(out["keys_changed_after_freeze"]) == 2
    assert calls == [{"final": True, "recheck_wait": 0}]  # the quiet target: no waiting rechecks


def test_changes_before_the_freeze_or_within_the_clock_skew_are_not_late(tmp_path):
    ctx, validate, calls = ctx_for(tmp_path, stamped=[FREEZE - 30, FREEZE, FREEZE + 1.5])
    out = cutover(ctx, approved_by="ops", approved_at=FREEZE, validate_fn=validate)
    assert out["changes_after_freeze"] == 0 and out["keys_changed_after_freeze"] == []
    control = ctx.staging.get_json(layout.CAPTURE_CONTROL)
    assert control["stop"] and control["why"] == "cutover"  # capture and apply were told to stop before validating


def test_a_source_without_change_times_says_the_freeze_is_not_proven(tmp_path):
    ctx, validate, _ = ctx_for(tmp_path, stamps=False, stamped=[FREEZE + 10])
    out = cutover(ctx, approved_by="ops", approved_at=FREEZE, validate_fn=validate)
    assert out["changes_after_freeze"] is None
