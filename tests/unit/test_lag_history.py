"""The lag history behind the view's chart and the report's picture: bounded, yet covering the whole run."""

from turnout.staging import LocalStaging
from turnout.status import record_lag


def _sample(t):
    return {"at": t, "lag_seconds": t % 7, "backlog": int(t) % 11, "captured": int(t), "applied": int(t), "x": 1}


def test_history_stays_bounded_and_keeps_the_start_of_a_long_run(tmp_path):
    st = LocalStaging(tmp_path)
    kept = sum(record_lag(st, _sample(1000.0 + 10 * i), keep=100) for i in range(2000))  # ~5.5 h at 10 s
    hist = st.get_json("reports/lag-history.json")
    assert kept == 2000 and 50 <= len(hist) <= 100
    ats = [h["at"] for h in hist]
    assert ats == sorted(ats) and ats[0] == 1000.0 and ats[-1] == 1000.0 + 10 * 1999  # first and last sample
    recent = [b - a for a, b in zip(ats[-20:], ats[-19:])]
    assert set(recent) == {10.0}  # the latest samples keep their full grain
    assert set(hist[0]) == {"at", "lag_seconds", "backlog", "captured", "applied"}  # only the chart's fields


def test_samples_closer_than_the_interval_are_dropped(tmp_path):
    st = LocalStaging(tmp_path)
    assert record_lag(st, _sample(100.0)) and not record_lag(st, _sample(103.0)) and record_lag(st, _sample(105.0))
    assert [h["at"] for h in st.get_json("reports/lag-history.json")] == [100.0, 105.0]
