import pytest

from turnout import changelog
from turnout.ports import Change
from turnout.errors import StagingError
from turnout.retry import TokenBucket, backoff_delays
from turnout.staging import LocalStaging, open_staging


def test_local_staging_put_get_list(tmp_path):
    st = open_staging(str(tmp_path)).child("mig")
    st.put_json("state/a.json", {"x": 1})
    st.put_jsonl_gz("export/seg-00000/chunk-00000.jsonl.gz", [{"a": 1}, {"b": "ü"}])
    assert st.get_json("state/a.json") == {"x": 1}
    assert st.get_json("state/missing.json", default=5) == 5
    assert list(st.iter_jsonl_gz("export/seg-00000/chunk-00000.jsonl.gz")) == [{"a": 1}, {"b": "ü"}]
    assert st.list("export/") == ["export/seg-00000/chunk-00000.jsonl.gz"]
    assert st.list("state/") == ["state/a.json"]
    assert not list(tmp_path.rglob(".tmp-*"))  # atomic writes leave no temp files
    with pytest.raises(StagingError, match="not in staging"):
        st.get_bytes("nope")


def test_local_staging_refuses_escape(tmp_path):
    st = LocalStaging(tmp_path)
    with pytest.raises(StagingError, match="escapes"):
        st.put_bytes("../outside", b"x")


def test_changelog_files_round_trip_in_order(tmp_path):
    st = LocalStaging(tmp_path)
    c1 = Change(key={"pk": {"S": "a"}}, op="put", image={"pk": {"S": "a"}, "b": {"B": b"\x00"}}, version=[5],
                created_at=1.5, origin="shard-1/5")
    c2 = Change(key={"pk": {"S": "a"}}, op="delete", image=None, version=[9], created_at=2.0, origin="shard-1/9")
    changelog.write_file(st, 0, [c1], 10.0)
    changelog.write_file(st, 1, [c2], 11.0)
    assert changelog.file_numbers(st) == [0, 1]
    assert [c for _, c in changelog.iter_changes(st)] == [c1, c2]
    assert [c for _, c in changelog.iter_changes(st, 1)] == [c2]


def test_token_bucket_limits_rate_with_fake_clock():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    tb = TokenBucket(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(30):
        tb.take(25)  # 750 units at 100/s: ~6.5 s after the first second's burst
    assert 6.0 <= now[0] <= 7.5
    assert TokenBucket(0).take(10**9) == 0.0


def test_backoff_is_bounded_exponential_and_jittered():
    """Full jitter: attempt n sleeps U(0, min(cap, base * 2**n)). Over many runs each attempt's delays fill their
    whole range (not all zero, not a fixed value), stay under the bound, and the bound grows until the cap."""
    import random
    import statistics

    state = random.getstate()
    try:
        random.seed(20261201)  # deterministic draws (if the engine uses the random module)
        runs = [list(backoff_delays(base=0.1, cap=2.0, attempts=10)) for _ in range(500)]
    finally:
        random.setstate(state)
    bounds = [min(2.0, 0.1 * 2**n) for n in range(10)]
    assert bounds[-1] == 2.0 and bounds[0] == 0.1
    assert all(len(r) == 10 for r in runs)
    for n, bound in enumerate(bounds):
        col = [r[n] for r in runs]
        assert all(0 <= d <= bound for d in col), (n, max(col))
        assert len(set(col)) >= 450, n  # jittered: (almost) every draw differs
        assert max(col) >= 0.9 * bound and min(col) <= 0.1 * bound, (n, min(col), max(col))  # spans the range
        assert 0.4 * bound <= statistics.mean(col) <= 0.6 * bound, (n, statistics.mean(col))  # uniform-ish
    means = [statistics.mean(r[n] for r in runs) for n in range(10)]
    assert means[4] > 8 * means[0] and means[9] > 12 * means[0]  # exponential growth, then capped
