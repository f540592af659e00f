"""DynamoDB -> Cosmos DB document mapping: every type, exact numbers, ids, reserved names."""

import pytest

from turnout.ports import Change
from turnout.adapters.cosmos.mapping import CosmosMapping, exact_number
from turnout.errors import RecordError
from turnout.spec import parse_spec

BASE = """\
name: c
source: {kind: dynamodb, conn_id: s, table: t}
target:
  kind: cosmos
  conn_id: cos
  database: db
  container: orders
staging: {url: /tmp/x}
"""


def mapping(**target):
    spec = parse_spec(BASE)
    t = spec.target.model_copy(update=target)
    return CosmosMapping.from_spec(t, ["pk", "sk"], ["S", "N"])


def test_every_type_maps_to_json():
    m = mapping()
    doc = m.item({
        "pk": {"S": "c#1"}, "sk": {"N": "42"},
        "s": {"S": "ü"}, "i": {"N": "9007199254740991"}, "f": {"N": "1.5"}, "b": {"B": b"\x00\xff"},
        "t": {"BOOL": True}, "z": {"NULL": True}, "ss": {"SS": ["b", "a"]}, "ns": {"NS": ["10", "-2", "3.25"]},
        "bs": {"BS": [b"\x02", b"\x01"]}, "m": {"M": {"x": {"L": [{"N": "1"}, {"S": "y"}, {"NULL": True}]}}},
    })
    assert doc == {"id": "c%231|42", "pk": "c#1", "sk": 42, "s": "ü", "i": 9007199254740991, "f": 1.5, "b": "AP8=",
                   "t": True, "z": None, "ss": ["a", "b"], "ns": [-2, 3.25, 10], "bs": ["AQ==", "Ag=="],
                   "m": {"x": [1, "y", None]}}


@pytest.mark.parametrize("text,expected", [
    ("9007199254740991", 9007199254740991),  # 2^53 - 1: exact
    ("9007199254740993", "9007199254740993"),  # 2^53 + 1: a double cannot hold it
    ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
    ("0.1", 0.1),
    ("1.10", 1.1),
    ("3.141592653589793238462643383279", "3.141592653589793238462643383279"),
    ("-0", 0),
    ("1E+2", 100),
])
def test_numbers_only_exact_or_declared_policy(text, expected):
    got = exact_number(text, "n", "string")
    assert got == expected and type(got) is type(expected)


def test_number_policy_error_names_the_attribute():
    m = mapping(number_policy="error")
    with pytest.raises(RecordError, match=r"number 9007199254740993 at m.deep has no exact JSON"):
        m.item({"pk": {"S": "a"}, "sk": {"N": "1"}, "m": {"M": {"deep": {"N": "9007199254740993"}}}})


def test_ids_escape_forbidden_characters_reversibly():
    m = mapping()
    key = {"pk": {"S": "a/b\\c?d#e%f|g"}, "sk": {"N": "7"}}
    doc_id = m.make_id(key)
    assert not set("/\\?#") & set(doc_id)
    assert doc_id == "a%2Fb%5Cc%3Fd%23e%25f%7Cg|7"
    assert m.parse_id(doc_id) == {"pk": "a/b\\c?d#e%f|g", "sk": "7"}
    assert m.source_key_of(m.item({**key, "x": {"S": "1"}})) == key


def test_ids_reject_policy_and_length_limit():
    with pytest.raises(RecordError, match=r"contains \['/'\]"):
        mapping(id_policy="reject").make_id({"pk": {"S": "a/b"}, "sk": {"N": "1"}})
    with pytest.raises(RecordError, match="over the limit of 255"):
        mapping().make_id({"pk": {"S": "x" * 300}, "sk": {"N": "1"}})


def test_id_template_must_use_key_attributes():
    spec = parse_spec(BASE)
    with pytest.raises(RecordError, match="not key attributes"):
        CosmosMapping.from_spec(spec.target.model_copy(update={"id_template": "{pk}-{nope}"}), ["pk", "sk"], ["S", "N"])
    with pytest.raises(RecordError, match="must use every key attribute"):
        CosmosMapping.from_spec(spec.target.model_copy(update={"id_template": "{pk}"}), ["pk", "sk"], ["S", "N"])


def test_reserved_attribute_names():
    doc = mapping().item({"pk": {"S": "a"}, "sk": {"N": "1"}, "id": {"S": "theirs"}, "_ts": {"N": "5"}})
    assert doc["id"] == "a|1" and doc["ddb_id"] == "theirs" and doc["ddb__ts"] == 5
    with pytest.raises(RecordError, match="collides with a Cosmos DB system property"):
        mapping(reserved_attribute_policy="error").item({"pk": {"S": "a"}, "sk": {"N": "1"}, "id": {"S": "x"}})


def test_a_prefixed_reserved_name_that_lands_on_an_existing_attribute_is_a_record_error():
    """"id" becomes "ddb_id"; an item that also has "ddb_id" would lose one of the two silently."""
    with pytest.raises(RecordError, match=r"attributes 'id' and 'ddb_id' both become 'ddb_id'.*reserved_prefix") as e:
        mapping().item({"pk": {"S": "a"}, "sk": {"N": "1"}, "id": {"S": "x"}, "ddb_id": {"S": "y"}})
    assert e.value.key == {"pk": {"S": "a"}, "sk": {"N": "1"}}
    doc = mapping(reserved_prefix="src_").item({"pk": {"S": "a"}, "sk": {"N": "1"}, "id": {"S": "x"},
                                                "ddb_id": {"S": "y"}})
    assert doc["src_id"] == "x" and doc["ddb_id"] == "y"


def test_a_rename_onto_an_attribute_the_item_has_is_a_record_error():
    from turnout.transform import Transform

    tr = Transform(("pk",), (("colour", "color"),), frozenset())
    assert tr.item({"pk": {"S": "a"}, "colour": {"S": "red"}}) == {"pk": {"S": "a"}, "color": {"S": "red"}}
    with pytest.raises(RecordError, match=r"attributes 'colour' and 'color' both become 'color'|"
                                          r"attributes 'color' and 'colour' both become 'color'"):
        tr.item({"pk": {"S": "a"}, "colour": {"S": "red"}, "color": {"S": "blue"}})


def test_hierarchical_partition_key_and_changes():
    m = mapping(partition_key=["/pk", "/sk"])
    item = {"pk": {"S": "a"}, "sk": {"N": "1"}, "tenant": {"S": "acme"}}
    doc = m.item(item)
    assert m.target_key_of(doc) == {"id": "a|1", "pk": ["a", 1]}
    [put] = m.change(Change(key={"pk": {"S": "a"}, "sk": {"N": "1"}}, op="put", image=item, version=[3], created_at=1))
    assert put.key == {"id": "a|1", "pk": ["a", 1]} and put.image == doc and put.version == [3]
    [gone] = m.change(Change(key={"pk": {"S": "a"}, "sk": {"N": "1"}}, op="delete", image=None, version=[4],
                             created_at=2))
    assert gone.key == {"id": "a|1", "pk": ["a", 1]}  # a delete names its partition from the key alone


def test_a_partition_key_on_a_non_key_attribute_is_refused():
    """An update that changes /tenant would leave the old document in its old logical partition, and a delete (key
    only) could not name the partition: refused when the mapping is built (preflight), naming the path."""
    with pytest.raises(RecordError, match=r"target.partition_key \['/tenant'\] is not a key attribute"):
        mapping(partition_key=["/tenant", "/pk"])


def test_spec_errors_for_cosmos_target():
    from turnout.errors import SpecError

    with pytest.raises(SpecError, match=r"c.yaml:3: target.database: required key is missing"):
        parse_spec(BASE.replace("  database: db\n", ""), "c.yaml")
    with pytest.raises(SpecError, match=r"c.yaml:8: target.partition_key: .*must look like /attribute"):
        parse_spec(BASE.replace("  container: orders\n", "  container: orders\n  partition_key: [pk]\n"), "c.yaml")


def test_the_independent_expectation_agrees_with_the_hand_written_document():
    """tests/independent_cosmos.py (the documented rules, no turnout code) reproduces the hand-written document for
    the sample that the integration and e2e comparisons also put through the engine."""
    import independent_cosmos as ic

    assert ic.expected_document(ic.TRICKY) == ic.TRICKY_DOC
    assert ic.make_id({"pk": {"S": "live?/#%|"}, "sk": {"S": "\\"}}, "{pk}|{sk}") == "live%3F%2F%23%25%7C|%5C"
    assert ic.make_id({"a": {"N": "1.50"}, "b": {"S": "x:y|z"}}, "{a}:{b}") == "1.5:x%3Ay|z"
    assert [ic.number(t) for t in ("9007199254740991", "-9007199254740993", "-0", "1E+2", "0.1", "1.10")] == [
        9007199254740991, "-9007199254740993", 0, 100, 0.1, 1.1]
