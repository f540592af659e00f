"""Great Expectations on the target sample (turnout.phases.expectations.expectations): each expectation reported by name,
and each one able to fail — duplicated keys, a null key, a required attribute missing, unequal counts."""

from turnout.phases.expectations import expectations

ALL_PASS = {
    "expect_column_values_to_be_unique(key)": True,
    "expect_column_values_to_not_be_null(key)": True,
    "expect_column_values_to_be_in_set(kind)": True,
    "expect_column_pair_values_to_be_equal(source_count)": True,
}


def sample(*keys, kind=True):
    return [{"key": k, "kind": kind} for k in keys]


def test_a_clean_sample_passes_every_expectation_by_name():
    r = expectations(sample("a", "b", "c"), ["kind"], 3, 3)
    assert r == {"success": True, "sample_size": 3, "expectations": ALL_PASS}


def test_duplicated_keys_in_the_sample_fail_uniqueness():
    r = expectations(sample("a", "b", "a"), ["kind"], 3, 3)
    assert r["success"] is False
    assert r["expectations"] == {**ALL_PASS, "expect_column_values_to_be_unique(key)": False}


def test_a_null_key_fails_not_null():
    r = expectations(sample("a", None), ["kind"], 2, 2)
    assert r["success"] is False and r["expectations"]["expect_column_values_to_not_be_null(key)"] is False
    assert r["expectations"]["expect_column_values_to_be_unique(key)"] is True


def test_a_required_attribute_missing_on_one_item_fails_its_expectation():
    s = sample("a", "b", "c")
    s[1]["kind"] = False  # item b lacks the attribute
    r = expectations(s, ["kind"], 3, 3)
    assert r["success"] is False
    assert r["expectations"] == {**ALL_PASS, "expect_column_values_to_be_in_set(kind)": False}


def test_a_required_attribute_absent_from_the_whole_sample_fails_too():
    r = expectations([{"key": "a"}, {"key": "b"}], ["kind", "sk"], 2, 2)
    assert r["success"] is False
    assert r["expectations"]["expect_column_values_to_be_in_set(kind)"] is False
    assert r["expectations"]["expect_column_values_to_be_in_set(sk)"] is False


def test_unequal_counts_fail_the_count_expectation():
    r = expectations(sample("a", "b"), ["kind"], 3, 2)
    assert r["success"] is False
    assert r["expectations"] == {**ALL_PASS, "expect_column_pair_values_to_be_equal(source_count)": False}
