"""The per-namespace gap (the Mongo route's catch-up gate waits for it): a namespace whose last change was applied
late must not hold that gap once nothing is pending, or the gate never opens for a collection that went quiet."""

from turnout.staging import LocalStaging
from turnout.status import lag_status


def staging(tmp_path, *, captured: int, applied: int, tip_poll_at: float):
    st = LocalStaging(tmp_path)
    st.put_json("capture/checkpoint.json", {"records": captured, "next_file": 1})
    st.put_json("capture/heartbeat.json", {"at": 1000.0, "tip_poll_at": tip_poll_at, "at_tip": True})
    st.put_json("apply/checkpoint.json", {"consumed": applied, "next_file": 1, "newest_ts": 900.0,
                                          "namespaces": {"shop.quiet": {"created": 900.0, "processed": 915.0},
                                                         "shop.busy": {"created": 990.0, "processed": 991.0}}})
    st.put_json("apply/heartbeat.json", {"at": 1000.0})
    return st


def test_a_quiet_namespace_with_nothing_pending_has_no_gap(tmp_path):
    s = lag_status(staging(tmp_path, captured=10, applied=10, tip_poll_at=999.0), now=1000.0)
    assert s["namespaces"]["shop.quiet"]["time_gap_in_seconds"] == 0.0
    assert s["gap_in_seconds"] == 0.0


def test_with_a_backlog_the_gap_is_how_late_the_newest_change_was_applied(tmp_path):
    s = lag_status(staging(tmp_path, captured=12, applied=10, tip_poll_at=999.0), now=1000.0)
    assert s["namespaces"]["shop.quiet"]["time_gap_in_seconds"] == 15.0  # 915 - 900
    assert s["namespaces"]["shop.busy"]["time_gap_in_seconds"] == 1.0
    assert s["gap_in_seconds"] == 15.0


def test_no_tip_poll_since_the_last_apply_keeps_the_gap(tmp_path):
    s = lag_status(staging(tmp_path, captured=10, applied=10, tip_poll_at=910.0), now=1000.0)
    assert s["namespaces"]["shop.quiet"]["time_gap_in_seconds"] == 15.0
