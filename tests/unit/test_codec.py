import base64

import pytest

from turnout.codec import (canonical, canonical_number, item_from_json, item_hash, item_size, item_to_json,
                           key_text, stable_bucket)
from turnout.errors import RecordError

EVERY_TYPE = {
    "pk": {"S": "ключ-🔑"},
    "n38": {"N": "12345678901234567890123456789012345678"},
    "nfrac": {"N": "-0.00000000000000000000000000000000000001"},
    "b": {"B": b"\x00\xff\x10binary"},
    "t": {"BOOL": True},
    "z": {"NULL": True},
    "m": {"M": {"inner": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"deep": {"BS": [b"a", b"b"]}}}]}}},
    "ss": {"SS": ["b", "a"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"\x01", b"\x02"]},
}


def test_every_type_round_trips_through_json():
    doc = item_to_json(EVERY_TYPE)
    assert doc["b"] == {"B": base64.b64encode(b"\x00\xff\x10binary").decode()}
    assert item_from_json(doc) == EVERY_TYPE


def test_numbers_keep_38_digits_and_canonicalise():
    assert canonical_number("12345678901234567890123456789012345678") == "12345678901234567890123456789012345678"
    assert canonical_number("1.50") == "1.5"
    assert canonical_number("1E+3") == "1000"
    assert canonical_number("-0.0") == "0"
    assert canonical_number("0.000001") == "0.000001"


def test_canonical_ignores_set_order_and_number_spelling():
    a = {"k": {"S": "1"}, "s": {"SS": ["x", "y"]}, "n": {"N": "2.50"}}
    b = {"n": {"N": "2.5"}, "s": {"SS": ["y", "x"]}, "k": {"S": "1"}}
    assert canonical(a) == canonical(b) and item_hash(a) == item_hash(b)
    assert item_hash(a) != item_hash({**a, "n": {"N": "2.51"}})


def test_list_order_matters():
    assert canonical({"l": {"L": [{"S": "a"}, {"S": "b"}]}}) != canonical({"l": {"L": [{"S": "b"}, {"S": "a"}]}})


@pytest.mark.parametrize("bad,where", [
    ({"x": {"Q": "1"}}, "x"),
    ({"x": {"S": "1", "N": "2"}}, "x"),
    ({"x": {"N": "twelve"}}, "x"),
    ({"x": {"M": {"y": {"B": "%%%not-base64"}}}}, "x.y"),
])
def test_malformed_values_are_named(bad, where):
    with pytest.raises(RecordError) as e:
        item_from_json(bad)
    assert where in str(e.value)


def test_stable_bucket_is_deterministic_and_spread():
    keys = [key_text({"pk": {"S": f"k{i}"}}) for i in range(2000)]
    b1 = [stable_bucket(k, 8) for k in keys]
    assert b1 == [stable_bucket(k, 8) for k in keys]
    counts = [b1.count(i) for i in range(8)]
    assert min(counts) > 150  # roughly uniform


def test_item_size_counts_names_and_values():
    assert item_size({"pk": {"S": "abc"}}) == 5
    assert item_size({"b": {"B": b"x" * 1000}}) == 1001
    big = {"pk": {"S": "k"}, "blob": {"B": b"x" * 400 * 1024}}
    assert item_size(big) > 400 * 1024
