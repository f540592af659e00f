"""Relational rows -> neutral items -> redesigned-key target items: templates, types, changes, inverse."""

import copy
import datetime as dt
from decimal import Decimal

import pytest
import yaml

from turnout.ports import Change
from turnout.errors import RecordError, SpecError
from turnout.adapters.mysql.transform import RelationalTransform
from turnout.adapters.mysql.values import TABLE_ATTR, Column, TableSchema, check_number, neutral_value, row_item
from turnout.spec import parse_spec

ORDERS = TableSchema("orders", (
    Column("order_id", "bigint", "bigint(20)"),
    Column("customer_id", "bigint", "bigint(20)"),
    Column("order_date", "date", "date"),
    Column("status", "enum", "enum('new','paid','shipped')"),
    Column("amount", "decimal", "decimal(12,2)"),
    Column("total", "decimal", "decimal(65,30)"),
    Column("big", "bigint", "bigint(20) unsigned"),
    Column("ratio", "double", "double"),
    Column("weight", "float", "float"),
    Column("placed_at", "datetime", "datetime(6)"),
    Column("updated_at", "timestamp", "timestamp(6)"),
    Column("notes", "json", "json"),
    Column("extra", "longtext", "longtext", json=True),  # MariaDB JSON
    Column("photo", "blob", "blob"),
    Column("comment", "text", "text"),
    Column("tags", "set", "set('gift','rush','fragile')"),
    Column("duration", "time", "time(6)"),
    Column("coupon", "varchar", "varchar(20)"),
    Column("flag", "tinyint", "tinyint(1)"),
    Column("code", "varchar", "varchar(20)"),
    Column("yr", "year", "year(4)"),
), ("order_id",))

CUSTOMERS = TableSchema("customers", (
    Column("customer_id", "bigint", "bigint(20)"),
    Column("email", "varchar", "varchar(100)"),
    Column("name", "varchar", "varchar(100)"),
), ("customer_id",))

SKUS = TableSchema("skus", (
    Column("sku", "varchar", "varchar(20)"),
    Column("price", "decimal", "decimal(10,2)"),
), ("sku",))

DAYS = TableSchema("days", (
    Column("day", "date", "date"),
    Column("at", "datetime", "datetime(6)"),
    Column("ts", "timestamp", "timestamp"),
    Column("v", "int", "int(11)"),
), ("day", "at", "ts"))

SCHEMAS = (ORDERS, CUSTOMERS, SKUS, DAYS)


def order_mapping():
    return {
        "partition_key": "CUSTOMER#{customer_id}",
        "sort_key": "ORDER#{order_date}#{order_id:012}",
        "computed": {"GSI1PK": "COUPON#{coupon}", "GSI1SK": "ORDER#{order_id:012}"},
    }


def customer_mapping():
    return {"partition_key": "CUSTOMER#{customer_id}", "sort_key": "PROFILE", "entity": "customer",
            "rename": {"email": "emailAddress"}}


GSIS = [{"name": "GSI1", "partition": "GSI1PK", "sort": "GSI1SK"},
        {"name": "GSI2", "partition": "GSI2PK", "sort": "SK", "projection": "KEYS_ONLY"}]


def spec_yaml(tables=None, *, sort=True, gsis=GSIS, **mapping):
    if tables is None:
        tables = {"orders": order_mapping(), "customers": customer_mapping()}
    m = {"type_attribute": "entity", **mapping}
    m = {k: v for k, v in m.items() if v is not None}
    doc = {
        "name": "t",
        "source": {"kind": "mysql", "conn_id": "m", "database": "shop"},
        "target": {"kind": "dynamodb", "conn_id": "t", "table": "shop",
                   "key": {"partition": "PK", **({"sort": "SK"} if sort else {})}, "gsis": gsis},
        "staging": {"url": "/tmp/x"},
        "mapping": {**m, "tables": tables},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def build(tables=None, *, sort=True, gsis=GSIS, schemas=SCHEMAS, **mapping) -> RelationalTransform:
    spec = parse_spec(spec_yaml(copy.deepcopy(tables), sort=sort, gsis=gsis, **mapping))
    return RelationalTransform.from_spec(spec, {s.name: s for s in schemas})


BASE = {"order_id": 42, "customer_id": 7, "order_date": dt.date(2024, 3, 5)}


def order(**cols):
    return row_item(ORDERS, {**BASE, **cols})


def with_sort(template, **extra):
    """The orders mapping with another sort-key template (the partition key then carries the primary key: every
    primary key column must be in a key template)."""
    return {"orders": {**order_mapping(), "partition_key": "O#{order_id}", "sort_key": template, **extra}}


# ------------------------------------------------------------------------------ key templates


def test_base_row_gives_keys_entity_and_columns():
    tr = build()
    assert tr.item(order()) == {
        "PK": {"S": "CUSTOMER#7"},
        "SK": {"S": "ORDER#2024-03-05#000000000042"},
        "entity": {"S": "orders"},
        "order_id": {"N": "42"},
        "customer_id": {"N": "7"},
        "order_date": {"S": "2024-03-05"},
        "GSI1SK": {"S": "ORDER#000000000042"},  # GSI1PK is left out: coupon is NULL (not in the row)
    }
    assert tr.target_key == ("PK", "SK")


def test_literal_braces_are_escaped_by_doubling():
    tr = build({"orders": {"partition_key": "{{T}}#{customer_id}", "sort_key": "X}}{{{order_id}}}"}})
    out = tr.item(order())
    assert out["PK"] == {"S": "{T}#7"}
    assert out["SK"] == {"S": "X}{42}"}


def test_literal_only_sort_key():
    out = build().item(row_item(CUSTOMERS, {"customer_id": 9, "email": "a@b.c", "name": "Ann"}))
    assert out == {"PK": {"S": "CUSTOMER#9"}, "SK": {"S": "PROFILE"}, "entity": {"S": "customer"},
                   "customer_id": {"N": "9"}, "emailAddress": {"S": "a@b.c"}, "name": {"S": "Ann"}}


@pytest.mark.parametrize("value,expected", [
    (42, "000000000042"),
    (0, "000000000000"),
    (-5, "-000000000005"),  # the sign goes in front of the padded digits
    (1234567890123, "1234567890123"),  # wider than the width: not truncated
    (9223372036854775807, "9223372036854775807"),
])
def test_zero_padding_of_integers(value, expected):
    tr = build(with_sort("{order_id:012}"))
    assert tr.item(order(order_id=value))["SK"] == {"S": expected}


def test_zero_padding_of_decimals_and_strings():
    tr = build(with_sort("{amount:06}"))
    assert tr.item(order(amount=Decimal("5.00")))["SK"] == {"S": "000005"}  # integral value: padded
    with pytest.raises(RecordError, match=r"column 'amount': zero-padding :06 needs an integer, got 5\.5 "
                                          r"\(used in a key template\)"):
        tr.item(order(amount=Decimal("5.50")))
    tr = build(with_sort("{code:05}"))
    assert tr.item(order(code="ab"))["SK"] == {"S": "000ab"}


def test_numbers_in_keys_are_normalized():
    tr = build(with_sort("A#{amount}#{ratio}"))
    assert tr.item(order(amount=Decimal("12.50"), ratio=0.25))["SK"] == {"S": "A#12.5#0.25"}


@pytest.mark.parametrize("col,value,expected", [
    ("order_date", dt.date(2024, 3, 5), "X#2024-03-05"),
    ("placed_at", dt.datetime(2024, 3, 5, 6, 7, 8), "X#2024-03-05T06:07:08.000000"),  # datetime(6): one width
    ("placed_at", dt.datetime(2024, 3, 5, 6, 7, 8, 123), "X#2024-03-05T06:07:08.000123"),
    ("updated_at", dt.datetime(2024, 3, 5, 6, 7, 8), "X#2024-03-05T06:07:08.000000"),  # no 'Z' in a key
    ("placed_at", "2024-03-05 06:07:08", "X#2024-03-05T06:07:08.000000"),  # text form (as staged), datetime(6)
])
@pytest.mark.parametrize("fmt", ["iso", "epoch", "epoch_ms"])
def test_dates_in_keys_render_iso_whatever_the_datetime_format(col, value, expected, fmt):
    tr = build(with_sort("X#{%s}" % col), datetime_format=fmt)
    assert tr.item(order(**{col: value}))["SK"] == {"S": expected}


@pytest.mark.parametrize("row", [{"customer_id": None}, {}], ids=["null", "absent"])
def test_null_key_column_names_table_key_and_column(row):
    tr = build()
    item = row_item(ORDERS, {"order_id": 42, "order_date": dt.date(2024, 3, 5), **row})
    with pytest.raises(RecordError, match=r"^table 'orders' key order_id=42: column 'customer_id': is NULL "
                                          r"\(used in a key template\)$"):
        tr.item(item)


def test_binary_column_in_key_is_refused():
    tr = build(with_sort("P#{photo}"))
    with pytest.raises(RecordError, match=r"table 'orders' key order_id=42: column 'photo': is binary"):
        tr.item(order(photo=b"\x01"))


def test_zero_date_in_key_is_refused():
    tr = build()
    with pytest.raises(RecordError, match=r"column 'order_date': zero date '0000-00-00'"):
        tr.item(order(order_date="0000-00-00"))


def test_empty_rendered_key_is_refused():
    tr = build({"orders": {"partition_key": "{code}", "sort_key": "S#{order_id}"}})
    with pytest.raises(RecordError, match=r"table 'orders' key order_id=42: column 'PK': the key template renders "
                                          "an empty string"):
        tr.item(order(code=""))
    assert tr.item(order(code="x"))["PK"] == {"S": "x"}


@pytest.mark.parametrize("where,extra", [
    ("partition_key", {"partition_key": "C#{nope}"}),
    ("sort_key", {"sort_key": "O#{nope:05}"}),
    ("computed", {"computed": {"GSI1PK": "X#{nope}"}}),
    ("rename", {"rename": {"nope": "n"}}),
    ("drop", {"drop": ["nope"]}),
    ("casts", {"casts": {"nope": "string"}}),
])
def test_unknown_column_is_refused_at_from_spec(where, extra):
    with pytest.raises(RecordError, match=r"^mapping\.tables\.orders: column 'nope' is not in table 'orders'"):
        build({"orders": {**order_mapping(), **extra}})


def test_unknown_table_is_refused_at_from_spec():
    with pytest.raises(RecordError, match=r"mapping\.tables\.invoices: table 'invoices' is not in the source "
                                          "database"):
        build({"invoices": {"partition_key": "I#{id}", "sort_key": "X"}})


def test_malformed_template_is_a_spec_error():
    with pytest.raises(SpecError, match=r"is not a column name"):
        parse_spec(spec_yaml({"orders": {**order_mapping(), "sort_key": "O#{order id}"}}))


# ------------------------------------------------------------------------------ types via item()


def test_decimal_is_exact_up_to_38_significant_digits():
    tr = build()
    out = tr.item(order(
        amount=Decimal("12.50"),
        total=Decimal("1234567890123456789012345678.0123456789"),
    ))
    assert out["amount"] == {"N": "12.5"}
    assert out["total"] == {"N": "1234567890123456789012345678.0123456789"}
    out = tr.item(order(total=Decimal("12345678901234567890123456789012345678")))
    assert out["total"] == {"N": "12345678901234567890123456789012345678"}
    out = tr.item(order(total=Decimal("-0.000000000000000000000000000001")))  # DECIMAL(65,30) smallest step
    assert out["total"] == {"N": "-1E-30"}


def test_decimal_with_39_digits_is_refused_with_a_way_out():
    big = Decimal("123456789012345678901234567890.123456789")  # 39 significant digits
    with pytest.raises(RecordError, match=r"^table 'orders' key order_id=42: column 'total': .*has 39 significant "
                                          r"digits; DynamoDB numbers hold 38 \(cast the column to string\)$"):
        build().item(order(total=big))
    tr = build({"orders": {**order_mapping(), "casts": {"total": "string"}}})
    assert tr.item(order(total=big))["total"] == {"S": "123456789012345678901234567890.123456789"}


def test_trailing_zeros_are_not_significant_digits():
    out = build().item(order(total=Decimal("1" + "0" * 34 + "." + "0" * 30)))  # 1E+34 as DECIMAL(65,30) text
    assert out["total"] == {"N": "1" + "0" * 34}


@pytest.mark.parametrize("text,expected", [
    ("0", "0"), ("-0.00", "0"), ("1E+2", "100"), ("0.10", "0.1"), ("1e-05", "0.00001"),
    ("99999999999999999999999999999999999999", "99999999999999999999999999999999999999"),
    ("1" + "0" * 45, "1E+45"),
    ("9.9E+125", "9.9E+125"),
    ("1E-130", "1E-130"),
])
def test_check_number(text, expected):
    assert check_number(text) == expected


@pytest.mark.parametrize("text,msg", [
    ("abc", "is not a number"), ("NaN", "is not a finite number"), ("Infinity", "is not a finite number"),
    ("1E+126", "outside DynamoDB's number range"), ("1E-131", "outside DynamoDB's number range"),
    ("1234567890123456789012345678901234567891", "has 40 significant digits"),
])
def test_check_number_refuses(text, msg):
    with pytest.raises(ValueError, match=msg):
        check_number(text)


def test_integers_are_exact():
    out = build().item(order(big=18446744073709551615, customer_id=-9223372036854775808, yr=2024))
    assert out["big"] == {"N": "18446744073709551615"}
    assert out["customer_id"] == {"N": "-9223372036854775808"}
    assert out["PK"] == {"S": "CUSTOMER#-9223372036854775808"}
    assert out["yr"] == {"N": "2024"}


def test_floats_and_doubles():
    out = build().item(order(ratio=0.1, weight=3.14))
    assert out["ratio"] == {"N": "0.1"} and out["weight"] == {"N": "3.14"}
    assert build().item(order(ratio=1e-05))["ratio"] == {"N": "0.00001"}
    assert build().item(order(ratio=-2.5e30))["ratio"] == {"N": "-2500000000000000000000000000000"}
    with pytest.raises(RecordError, match=r"column 'ratio': .*outside DynamoDB's number range"):
        build().item(order(ratio=1.7976931348623157e308))


@pytest.mark.parametrize("fmt,col,value,expected", [
    ("iso", "placed_at", dt.datetime(2024, 3, 5, 6, 7, 8), {"S": "2024-03-05T06:07:08.000000"}),
    ("iso", "placed_at", dt.datetime(2024, 3, 5, 6, 7, 8, 120000), {"S": "2024-03-05T06:07:08.120000"}),
    ("iso", "placed_at", dt.datetime(2024, 3, 5, 6, 7, 8, 1), {"S": "2024-03-05T06:07:08.000001"}),
    ("iso", "updated_at", dt.datetime(2024, 3, 5, 6, 7, 8), {"S": "2024-03-05T06:07:08.000000Z"}),
    ("iso", "updated_at", dt.datetime(2024, 3, 5, 6, 7, 8, 500000), {"S": "2024-03-05T06:07:08.500000Z"}),
    ("iso", "order_date", dt.date(2024, 3, 5), {"S": "2024-03-05"}),
    ("epoch", "order_date", dt.date(1970, 1, 2), {"N": "86400"}),
    ("epoch", "placed_at", dt.datetime(1970, 1, 2), {"N": "86400"}),
    ("epoch", "placed_at", dt.datetime(1970, 1, 2, 0, 0, 0, 500000), {"N": "86400.5"}),
    ("epoch", "placed_at", dt.datetime(1969, 12, 31, 23, 59, 59), {"N": "-1"}),
    ("epoch", "updated_at", dt.datetime(2024, 3, 5, 6, 7, 8), {"N": "1709618828"}),
    ("epoch", "placed_at", dt.datetime(1970, 1, 1), {"N": "0"}),
    ("epoch_ms", "order_date", dt.date(1970, 1, 2), {"N": "86400000"}),
    ("epoch_ms", "placed_at", dt.datetime(1970, 1, 1, 0, 0, 1, 234567), {"N": "1234.567"}),
    ("epoch_ms", "updated_at", dt.datetime(2024, 3, 5, 6, 7, 8, 9000), {"N": "1709618828009"}),
])
def test_datetime_formats(fmt, col, value, expected):
    tr = build(datetime_format=fmt)
    assert tr.item(order(**{col: value}))[col] == expected


def test_per_column_cast_overrides_datetime_format():
    tr = build({"orders": {**order_mapping(), "casts": {"placed_at": "iso", "order_date": "string"}}},
               datetime_format="epoch")
    out = tr.item(order(placed_at=dt.datetime(1970, 1, 2), updated_at=dt.datetime(1970, 1, 2)))
    assert out["placed_at"] == {"S": "1970-01-02T00:00:00.000000"}
    assert out["order_date"] == {"S": "2024-03-05"}
    assert out["updated_at"] == {"N": "86400"}


@pytest.mark.parametrize("fmt", ["iso", "epoch", "epoch_ms"])
def test_zero_date_is_refused(fmt):
    with pytest.raises(RecordError, match=r"^table 'orders' key order_id=42: column 'placed_at': zero date "
                                          r"'0000-00-00 00:00:00' has no calendar value"):
        build(datetime_format=fmt).item(order(placed_at="0000-00-00 00:00:00"))  # pymysql gives the text


def test_zero_date_survives_a_string_cast():
    tr = build({"orders": {**order_mapping(), "casts": {"placed_at": "string"}}})
    assert tr.item(order(placed_at="0000-00-00 00:00:00"))["placed_at"] == {"S": "0000-00-00 00:00:00"}


def test_json_becomes_map_and_list_with_exact_numbers():
    text = ('{"a": 1, "b": [1.50, "x", null, true, false], "c": {"d": 12345678901234567890123456789012345678, '
            '"e": 1e2}, "s": ""}')
    out = build().item(order(notes=text))
    assert out["notes"] == {"M": {
        "a": {"N": "1"},
        "b": {"L": [{"N": "1.5"}, {"S": "x"}, {"NULL": True}, {"BOOL": True}, {"BOOL": False}]},
        "c": {"M": {"d": {"N": "12345678901234567890123456789012345678"}, "e": {"N": "100"}}},
        "s": {"S": ""},
    }}


def test_json_scalars_and_mariadb_json():
    tr = build()
    assert tr.item(order(notes="[1, [2]]"))["notes"] == {"L": [{"N": "1"}, {"L": [{"N": "2"}]}]}
    assert tr.item(order(notes='"hi"'))["notes"] == {"S": "hi"}
    assert tr.item(order(notes="3.25"))["notes"] == {"N": "3.25"}
    assert tr.item(order(extra='{"k": ["v"]}'))["extra"] == {"M": {"k": {"L": [{"S": "v"}]}}}  # LONGTEXT + json_valid


@pytest.mark.parametrize("nulls,expected", [("omit", None), ("null", {"NULL": True})])
def test_json_null_is_null(nulls, expected):
    out = build(nulls=nulls).item(order(notes="null"))
    assert out.get("notes") == expected


def test_invalid_json_names_the_column():
    with pytest.raises(RecordError, match=r"^table 'orders' key order_id=42: column 'notes': not valid JSON"):
        build().item(order(notes='{"a":'))


def test_json_number_too_long_names_its_path():
    with pytest.raises(RecordError, match=r"column 'notes': at \$\.a\[1\]: .*39 significant digits"):
        build().item(order(notes='{"a": [0, 123456789012345678901234567890123456789]}'))


def test_json_cast_string_keeps_the_text():
    text = '{"b": [1.50, null], "a": 1e2}'
    tr = build({"orders": {**order_mapping(), "casts": {"notes": "string"}}})
    assert tr.item(order(notes=text))["notes"] == {"S": text}


def test_blob_is_binary_and_text_bytes_are_decoded():
    tr = build()
    out = tr.item(order(photo=b"\x00\xff", comment=b"caf\xc3\xa9"))
    assert out["photo"] == {"B": b"\x00\xff"}
    assert out["comment"] == {"S": "café"}
    tr = build({"orders": {**order_mapping(), "casts": {"photo": "string", "comment": "binary"}}})
    out = tr.item(order(photo=b"\x00\xff", comment="café"))
    assert out["photo"] == {"S": "AP8="}  # base64
    assert out["comment"] == {"B": "café".encode()}


def test_enum_is_a_string():
    assert build().item(order(status="paid"))["status"] == {"S": "paid"}


@pytest.mark.parametrize("value", ["rush,gift", "gift,rush", {"rush", "gift"}, frozenset({"gift", "rush"})])
def test_set_becomes_string_set(value):
    assert build().item(order(tags=value))["tags"] == {"SS": ["gift", "rush"]}


@pytest.mark.parametrize("value", ["", set()])
def test_empty_set_is_left_out_or_null(value):
    assert "tags" not in build().item(order(tags=value))
    assert build(nulls="null").item(order(tags=value))["tags"] == {"NULL": True}


def test_nulls_omit_or_null():
    row = dict(comment=None, amount=None, photo=None, notes=None)
    out = build().item(order(**row))
    assert not set(row) & set(out)
    out = build(nulls="null").item(order(**row))
    assert {k: out[k] for k in row} == {k: {"NULL": True} for k in row}


@pytest.mark.parametrize("value,expected", [
    (dt.timedelta(hours=1, minutes=2, seconds=3), "01:02:03"),
    (dt.timedelta(0), "00:00:00"),
    (dt.timedelta(seconds=-1), "-00:00:01"),
    (-dt.timedelta(hours=1, microseconds=500), "-01:00:00.000500"),
    (dt.timedelta(hours=12, microseconds=120000), "12:00:00.120000"),
    (dt.timedelta(hours=838, minutes=59, seconds=59), "838:59:59"),
    (-dt.timedelta(hours=838, minutes=59, seconds=59), "-838:59:59"),
    (dt.timedelta(days=1, hours=2), "26:00:00"),
])
def test_time_is_text(value, expected):
    assert build().item(order(duration=value))["duration"] == {"S": expected}


def test_rename_and_drop():
    tr = build({"orders": {**order_mapping(), "rename": {"comment": "remark", "customer_id": "customerId"},
                           "drop": ["photo", "code"]}})
    out = tr.item(order(comment="hi", photo=b"x", code="c"))
    assert out["remark"] == {"S": "hi"} and "comment" not in out
    assert out["customerId"] == {"N": "7"} and "customer_id" not in out
    assert out["PK"] == {"S": "CUSTOMER#7"}  # templates name source columns, not target attributes
    assert "photo" not in out and "code" not in out


def test_dropping_a_primary_key_column_is_refused():
    with pytest.raises(RecordError, match=r"mapping\.tables\.orders\.drop: primary key columns \['order_id'\] "
                                          "cannot be dropped"):
        build({"orders": {**order_mapping(), "drop": ["order_id", "photo"]}})


@pytest.mark.parametrize("cast,col,value,expected", [
    ("number", "code", "0012.50", {"N": "12.5"}),
    ("number", "code", " -7 ", {"N": "-7"}),
    ("string", "amount", Decimal("12.50"), {"S": "12.50"}),  # the neutral (MySQL) text, unnormalized
    ("string", "big", 18446744073709551615, {"S": "18446744073709551615"}),
    ("bool", "flag", 1, {"BOOL": True}),
    ("bool", "flag", 0, {"BOOL": False}),
    ("bool", "flag", 2, {"BOOL": True}),
    ("bool", "code", "Yes", {"BOOL": True}),
    ("bool", "code", " false ", {"BOOL": False}),
    ("bool", "code", "0", {"BOOL": False}),
    ("set", "code", "b,a,,b", {"SS": ["a", "b"]}),
    ("json", "comment", '{"x": 1}', {"M": {"x": {"N": "1"}}}),
    ("binary", "code", "ab", {"B": b"ab"}),
])
def test_casts(cast, col, value, expected):
    tr = build({"orders": {**order_mapping(), "casts": {col: cast}}})
    assert tr.item(order(**{col: value}))[col] == expected


@pytest.mark.parametrize("cast,col,value,msg", [
    ("number", "code", "abc", r"'abc' is not a number"),
    ("bool", "code", "maybe", r"'maybe' is not a boolean"),
    ("json", "flag", 1, r"only text holds JSON"),
    ("iso", "code", "yesterday", r"'yesterday' is not a date/time"),
])
def test_cast_failures_name_the_column(cast, col, value, msg):
    tr = build({"orders": {**order_mapping(), "casts": {col: cast}}})
    with pytest.raises(RecordError, match=rf"^table 'orders' key order_id=42: column '{col}': {msg}"):
        tr.item(order(**{col: value}))


def test_unknown_cast_is_a_spec_error():
    with pytest.raises(SpecError, match=r"cast 'text' for column 'code' is not one of"):
        parse_spec(spec_yaml({"orders": {**order_mapping(), "casts": {"code": "text"}}}))


def test_computed_attributes_and_sparse_index():
    tr = build()
    out = tr.item(order(coupon="SPRING"))
    assert out["GSI1PK"] == {"S": "COUPON#SPRING"} and out["GSI1SK"] == {"S": "ORDER#000000000042"}
    assert out["coupon"] == {"S": "SPRING"}
    for item in (order(coupon=None), order()):
        out = tr.item(item)
        assert "GSI1PK" not in out and out["GSI1SK"] == {"S": "ORDER#000000000042"}
    out = build(nulls="null").item(order(coupon=None))
    assert "GSI1PK" not in out and out["coupon"] == {"NULL": True}  # the column is NULL, the index key is absent


def test_type_attribute_and_entity():
    tr = build()
    assert tr.item(order())["entity"] == {"S": "orders"}
    assert tr.item(row_item(CUSTOMERS, {"customer_id": 1}))["entity"] == {"S": "customer"}
    out = build(type_attribute=None).item(order())
    assert "entity" not in out and set(out) == {"PK", "SK", "order_id", "customer_id", "order_date", "GSI1SK"}
    out = build(type_attribute="kind").item(order())
    assert out["kind"] == {"S": "orders"}


@pytest.mark.parametrize("extra,clash", [
    ({"rename": {"coupon": "PK"}}, "PK"),
    ({"rename": {"code": "SK"}}, "SK"),
    ({"rename": {"code": "GSI1PK"}}, "GSI1PK"),
    ({"rename": {"code": "entity"}}, "entity"),
    ({"computed": {"code": "C#{code}"}}, "code"),  # a computed attribute named like a kept column
])
def test_column_onto_a_key_computed_or_type_attribute_is_refused(extra, clash):
    mapping = order_mapping()
    mapping["computed"] = {**mapping["computed"], **extra.pop("computed", {})}
    with pytest.raises(RecordError, match=rf"^mapping\.tables\.orders: columns map to attributes the "
                                          rf"key/computed/type attributes use: \['{clash}'\]"):
        build({"orders": {**mapping, **extra}})


def test_column_named_like_the_type_attribute_is_refused_unless_renamed():
    with pytest.raises(RecordError, match=r"attributes use: \['code'\]"):
        build(type_attribute="code")
    tr = build({"orders": {**order_mapping(), "rename": {"code": "theCode"}}}, type_attribute="code")
    out = tr.item(order(code="x"))
    assert out["code"] == {"S": "orders"} and out["theCode"] == {"S": "x"}


def test_two_columns_onto_one_attribute_are_refused():
    with pytest.raises(RecordError, match=r"two columns map to the same attribute: \['comment'\]"):
        build({"orders": {**order_mapping(), "rename": {"code": "comment"}}})


@pytest.mark.parametrize("attr", ["PK", "SK", "entity"])
def test_computed_attribute_onto_a_key_or_type_attribute_is_refused(attr):
    mapping = order_mapping()
    mapping["computed"] = {attr: "X#{code}"}
    with pytest.raises(RecordError, match=rf"mapping\.tables\.orders: computed attribute\(s\) \['{attr}'\]"):
        build({"orders": mapping})


def test_two_tables_with_one_entity_are_refused():
    tables = {"orders": {**order_mapping(), "entity": "customer"}, "customers": customer_mapping()}
    with pytest.raises(RecordError, match="two tables share an entity name"):
        build(tables)
    build(tables, type_attribute=None)  # without a type attribute the entity name is not written


def test_row_of_an_unmapped_table_is_refused():
    with pytest.raises(RecordError, match=r"row of table 'skus', which the mapping does not migrate"):
        build().item(row_item(SKUS, {"sku": "A", "price": Decimal("1")}))
    with pytest.raises(RecordError, match=r"row of table None"):
        build().item({"order_id": {"N": "1"}})


# ------------------------------------------------------------------------------ changes


def chg(op, image, old=None, key=None):
    return Change(key=key or {"__table": {"S": "orders"}, "order_id": {"N": "42"}}, op=op, image=image,
                  version=[3, 120, 118, 0], created_at=1700000000.5, origin="binlog.000003:118#0", old_image=old)


def test_insert_is_one_put():
    tr = build()
    image = order(status="new")
    [put] = tr.change(chg("put", image))
    assert put.op == "put"
    assert put.key == {"PK": {"S": "CUSTOMER#7"}, "SK": {"S": "ORDER#2024-03-05#000000000042"}}
    assert put.image == tr.item(image)
    assert (put.version, put.created_at, put.origin) == ([3, 120, 118, 0], 1700000000.5, "binlog.000003:118#0")
    assert put.old_image is None


def test_update_without_key_change_is_one_put():
    tr = build()
    [put] = tr.change(chg("put", order(status="paid", coupon="X"), old=order(status="new")))
    assert put.op == "put" and put.key == {"PK": {"S": "CUSTOMER#7"}, "SK": {"S": "ORDER#2024-03-05#000000000042"}}
    assert put.image["status"] == {"S": "paid"} and put.image["GSI1PK"] == {"S": "COUPON#X"}
    assert put.version == [3, 120, 118, 0] and put.created_at == 1700000000.5


@pytest.mark.parametrize("changed,new_key", [
    ({"customer_id": 8}, {"PK": {"S": "CUSTOMER#8"}, "SK": {"S": "ORDER#2024-03-05#000000000042"}}),
    ({"order_date": dt.date(2024, 3, 6)}, {"PK": {"S": "CUSTOMER#7"}, "SK": {"S": "ORDER#2024-03-06#000000000042"}}),
])
def test_update_that_moves_the_key_is_delete_then_put(changed, new_key):
    tr = build()
    new = order(status="paid", **changed)
    delete, put = tr.change(chg("put", new, old=order(status="new")))
    assert delete.op == "delete" and delete.image is None
    assert delete.key == {"PK": {"S": "CUSTOMER#7"}, "SK": {"S": "ORDER#2024-03-05#000000000042"}}
    assert put.op == "put" and put.key == new_key and put.image == tr.item(new)
    for c in (delete, put):
        assert (c.version, c.created_at, c.origin) == ([3, 120, 118, 0], 1700000000.5, "binlog.000003:118#0")


def test_update_of_a_non_key_column_used_only_in_computed_is_one_put():
    tr = build()
    [put] = tr.change(chg("put", order(coupon=None), old=order(coupon="X")))
    assert put.op == "put" and "GSI1PK" not in put.image  # the index entry goes with the full put


def test_delete_uses_the_before_image():
    tr = build()
    [d] = tr.change(chg("delete", None, old=order(customer_id=9, status="paid")))
    assert d.op == "delete" and d.image is None
    assert d.key == {"PK": {"S": "CUSTOMER#9"}, "SK": {"S": "ORDER#2024-03-05#000000000042"}}
    assert (d.version, d.created_at, d.origin) == ([3, 120, 118, 0], 1700000000.5, "binlog.000003:118#0")


def test_delete_without_before_image_is_refused():
    with pytest.raises(RecordError, match=r"has no before image \(binlog_row_image must be FULL\)"):
        build().change(chg("delete", None))


def test_before_image_with_a_bad_non_key_value_does_not_block_the_change():
    """Only the key of the before image matters: an UPDATE that repairs a bad value (or a DELETE of a row with
    one) must still be applied."""
    tr = build()
    bad = order(notes='{"broken":', total=Decimal("1" * 39))
    [put] = tr.change(chg("put", order(notes='{"ok": true}'), old=bad))
    assert put.op == "put" and put.image["notes"] == {"M": {"ok": {"BOOL": True}}}
    [d] = tr.change(chg("delete", None, old=bad))
    assert d.key == {"PK": {"S": "CUSTOMER#7"}, "SK": {"S": "ORDER#2024-03-05#000000000042"}}


def test_before_image_with_a_bad_key_value_is_refused():
    with pytest.raises(RecordError, match=r"column 'customer_id': is NULL"):
        build().change(chg("delete", None, old=order(customer_id=None)))


def test_bad_after_image_is_refused():
    with pytest.raises(RecordError, match=r"column 'notes': not valid JSON"):
        build().change(chg("put", order(notes="{"), old=order()))


# ------------------------------------------------------------------------------ inverse


@pytest.mark.parametrize("type_attribute", ["entity", None])
def test_source_key_of_number_key(type_attribute):
    tr = build(type_attribute=type_attribute)
    target = tr.item(order(status="paid"))
    assert tr.source_key_of(target) == {TABLE_ATTR: {"S": "orders"}, "order_id": {"N": "42"}}
    assert tr.group_of(target) == "orders"
    cust = tr.item(row_item(CUSTOMERS, {"customer_id": 7, "email": "e"}))
    assert tr.source_key_of(cust) == {TABLE_ATTR: {"S": "customers"}, "customer_id": {"N": "7"}}
    assert tr.group_of(cust) == "customers"


def test_source_key_of_follows_renamed_key_columns():
    tr = build({"orders": {**order_mapping(), "rename": {"order_id": "orderId"}}})
    assert tr.source_key_of(tr.item(order())) == {TABLE_ATTR: {"S": "orders"}, "order_id": {"N": "42"}}


@pytest.mark.parametrize("type_attribute", ["entity", None])
def test_source_key_of_string_key(type_attribute):
    tr = build({"skus": {"partition_key": "SKU#{sku}", "sort_key": "META"}}, type_attribute=type_attribute)
    n = row_item(SKUS, {"sku": "AB-T1", "price": Decimal("9.90")})
    target = tr.item(n)
    assert tr.source_key_of(target) == {TABLE_ATTR: {"S": "skus"}, "sku": {"S": "AB-T1"}}
    assert tr.source_key_of(target) == tr.source_key_from(n)
    assert tr.group_of(target) == "skus"


@pytest.mark.parametrize("type_attribute", ["entity", None])
def test_source_key_of_iso_date_keys(type_attribute):
    tr = build({"days": {"partition_key": "DAY#{day}", "sort_key": "AT#{at}#{ts}"}}, type_attribute=type_attribute)
    for at, ts in [(dt.datetime(2024, 3, 5, 6, 7, 8), dt.datetime(2024, 3, 5, 23, 0, 1)),
                   (dt.datetime(2024, 3, 5, 6, 7, 8, 120000), dt.datetime(2024, 3, 5, 23, 0, 1))]:
        n = row_item(DAYS, {"day": dt.date(2024, 3, 5), "at": at, "ts": ts, "v": 1})
        target = tr.item(n)
        assert target["ts"] == {"S": "2024-03-05T23:00:01Z"}
        assert tr.source_key_of(target) == tr.source_key_from(n)
    assert tr.source_key_of(target) == {TABLE_ATTR: {"S": "days"}, "day": {"S": "2024-03-05"},
                                        "at": {"S": "2024-03-05 06:07:08.120000"},
                                        "ts": {"S": "2024-03-05 23:00:01"}}


def test_source_key_of_epoch_key_cannot_be_told():
    tr = build({"days": {"partition_key": "DAY#{day}", "sort_key": "AT#{at}#{ts}"}}, datetime_format="epoch")
    n = row_item(DAYS, {"day": dt.date(2024, 3, 5), "at": dt.datetime(2024, 3, 5), "ts": dt.datetime(2024, 3, 5)})
    target = tr.item(n)
    assert target["day"] == {"N": "1709596800"}
    assert tr.group_of(target) == "days"
    assert tr.source_key_of(target) is None


def test_source_key_of_unknown_items():
    tr = build()
    assert tr.source_key_of({"PK": {"S": "X"}, "SK": {"S": "Y"}, "entity": {"S": "nobody"}}) is None
    assert tr.group_of({"PK": {"S": "X"}, "SK": {"S": "Y"}, "entity": {"S": "nobody"}}) is None
    tr = build(type_attribute=None)
    assert tr.source_key_of({"PK": {"S": "ACCOUNT#1"}, "SK": {"S": "PROFILE"}, "customer_id": {"N": "1"}}) is None
    # the templates match but the primary key attribute is missing
    assert tr.source_key_of({"PK": {"S": "CUSTOMER#1"}, "SK": {"S": "PROFILE"}}) is None
    assert tr.group_of({"PK": {"S": "CUSTOMER#1"}}) is None


def test_source_key_of_without_type_attribute_tells_tables_apart_by_template():
    tr = build(type_attribute=None)
    o = tr.item(order())
    c = tr.item(row_item(CUSTOMERS, {"customer_id": 7}))
    assert o["PK"] == c["PK"]  # same partition, told apart by the sort key template
    assert tr.group_of(o) == "orders" and tr.group_of(c) == "customers"


def test_two_tables_with_key_templates_of_one_shape_are_refused():
    """skus and parts both ITEM#{sku} / META: sku 'X' in each renders one key, and the last write would win."""
    parts = TableSchema("parts", (Column("sku", "varchar", "varchar(20)"),), ("sku",))
    tables = {"skus": {"partition_key": "ITEM#{sku}", "sort_key": "META"},
              "parts": {"partition_key": "ITEM#{sku}", "sort_key": "META", "entity": "part"}}
    with pytest.raises(RecordError, match=r"mapping.tables.skus and mapping.tables.parts have key templates of one "
                                          r"shape .*own literal prefix"):
        build(tables, schemas=(SKUS, parts))


def test_type_attribute_names_the_table_of_each_item():
    parts = TableSchema("parts", (Column("sku", "varchar", "varchar(20)"),), ("sku",))
    tables = {"skus": {"partition_key": "ITEM#{sku}", "sort_key": "META"},
              "parts": {"partition_key": "ITEM#{sku}", "sort_key": "PART", "entity": "part"}}
    tr = build(tables, schemas=(SKUS, parts))
    p = tr.item(row_item(parts, {"sku": "P1"}))
    s = tr.item(row_item(SKUS, {"sku": "S1"}))
    assert p["entity"] == {"S": "part"} and s["entity"] == {"S": "skus"}
    assert tr.group_of(p) == "parts" and tr.group_of(s) == "skus"
    assert tr.source_key_of(p) == {TABLE_ATTR: {"S": "parts"}, "sku": {"S": "P1"}}
    assert tr.source_key_of(s) == {TABLE_ATTR: {"S": "skus"}, "sku": {"S": "S1"}}


def test_source_key_from():
    tr = build()
    item = order(status="paid")
    assert tr.source_key_from(item) == {TABLE_ATTR: {"S": "orders"}, "order_id": {"N": "42"}}
    with pytest.raises(RecordError, match=r"table 'orders': row lacks primary key column 'order_id'"):
        tr.source_key_from(row_item(ORDERS, {"customer_id": 1}))
    with pytest.raises(RecordError, match=r"which the mapping does not migrate"):
        tr.source_key_from(row_item(SKUS, {"sku": "x"}))


def test_target_key_of():
    tr = build()
    assert tr.target_key_of(tr.item(order())) == {"PK": {"S": "CUSTOMER#7"},
                                                  "SK": {"S": "ORDER#2024-03-05#000000000042"}}


# ------------------------------------------------------------------------------ target_info


def test_target_info():
    info = build().target_info()
    assert info.key_attributes == ["PK", "SK"]
    assert info.key_schema == [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}]
    assert info.attribute_definitions == [{"AttributeName": a, "AttributeType": "S"}
                                          for a in ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK")]
    assert info.indexes == {"gsi": [
        {"IndexName": "GSI1", "KeySchema": [{"AttributeName": "GSI1PK", "KeyType": "HASH"},
                                            {"AttributeName": "GSI1SK", "KeyType": "RANGE"}],
         "Projection": {"ProjectionType": "ALL"}},
        {"IndexName": "GSI2", "KeySchema": [{"AttributeName": "GSI2PK", "KeyType": "HASH"},
                                            {"AttributeName": "SK", "KeyType": "RANGE"}],
         "Projection": {"ProjectionType": "KEYS_ONLY"}},
    ]}
    assert (info.item_count, info.size_bytes) == (0, 0)


def test_target_info_partition_only():
    tr = build({"orders": {"partition_key": "ORDER#{order_id}", "computed": {"G": "C#{customer_id}"}}}, sort=False,
               gsis=[{"name": "ByCustomer", "partition": "G"}])
    info = tr.target_info()
    assert info.key_attributes == ["PK"] and tr.target_key == ("PK",)
    assert info.key_schema == [{"AttributeName": "PK", "KeyType": "HASH"}]
    assert info.attribute_definitions == [{"AttributeName": "PK", "AttributeType": "S"},
                                          {"AttributeName": "G", "AttributeType": "S"}]
    assert info.indexes == {"gsi": [{"IndexName": "ByCustomer", "KeySchema": [{"AttributeName": "G", "KeyType": "HASH"}],
                                     "Projection": {"ProjectionType": "ALL"}}]}
    out = tr.item(order())
    assert out["PK"] == {"S": "ORDER#42"} and "SK" not in out and out["G"] == {"S": "C#7"}
    assert tr.source_key_of(out) == {TABLE_ATTR: {"S": "orders"}, "order_id": {"N": "42"}}


def test_sort_key_must_match_target_key():
    with pytest.raises(SpecError, match=r"mapping\.tables\.orders: sort_key must be given exactly when target\.key\.sort"):
        parse_spec(spec_yaml({"orders": {"partition_key": "O#{order_id}"}}))


# ------------------------------------------------------------------------------ neutral values


def col(name):
    return ORDERS.column(name)


@pytest.mark.parametrize("column,value,expected", [
    ("order_id", None, {"NULL": True}),
    ("order_id", 5, {"N": "5"}),
    ("flag", True, {"N": "1"}),
    ("amount", Decimal("12.50"), {"N": "12.50"}),  # the MySQL text, unnormalized
    ("total", Decimal("1E+2"), {"N": "100"}),
    ("ratio", 0.1, {"N": "0.1"}),
    ("photo", b"\x00\xff", {"B": b"\x00\xff"}),
    ("photo", bytearray(b"\x01"), {"B": b"\x01"}),
    ("comment", b"caf\xc3\xa9", {"S": "café"}),
    ("comment", "café", {"S": "café"}),
    ("placed_at", dt.datetime(2024, 3, 5, 6, 7, 8), {"S": "2024-03-05 06:07:08.000000"}),
    ("placed_at", dt.datetime(2024, 3, 5, 6, 7, 8, 5), {"S": "2024-03-05 06:07:08.000005"}),
    ("order_date", dt.date(2024, 3, 5), {"S": "2024-03-05"}),
    ("duration", -dt.timedelta(minutes=1, microseconds=1), {"S": "-00:01:00.000001"}),
    ("tags", {"fragile", "gift"}, {"S": "gift,fragile"}),  # the column's declared order, as MySQL prints it
    ("tags", "gift,fragile", {"S": "gift,fragile"}),
    ("notes", '{"a": 1}', {"S": '{"a": 1}'}),
])
def test_neutral_value(column, value, expected):
    assert neutral_value(col(column), value) == expected


@pytest.mark.parametrize("column,select_value,binlog_value", [
    ("tags", "gift,rush", {"rush", "gift"}),
    ("tags", "gift,rush,fragile", {"fragile", "rush", "gift"}),
    ("comment", "café", b"caf\xc3\xa9"),
    ("amount", Decimal("12.50"), Decimal("12.50")),
    ("placed_at", dt.datetime(2024, 3, 5, 6, 7, 8, 120000), dt.datetime(2024, 3, 5, 6, 7, 8, 120000)),
    ("duration", dt.timedelta(hours=-1), dt.timedelta(hours=-1)),
    ("extra", '{"a": [1, 2]}', '{"a": [1, 2]}'),  # MariaDB JSON is text on both paths
])
def test_select_and_binlog_give_the_same_neutral_value(column, select_value, binlog_value):
    assert neutral_value(col(column), select_value) == neutral_value(col(column), binlog_value)


@pytest.mark.parametrize("select_value,binlog_value", [
    ('{"a": 1, "b": [1.5, "x", null, true]}', {"a": 1, "b": [1.5, "x", None, True]}),
    ('[1, {"k": "v"}]', [1, {"k": "v"}]),
    # python-mysql-replication decodes MySQL's binary JSON with bytes for object keys and strings
    ('{"a": "x", "n": {"m": ["y"]}}', {b"a": b"x", b"n": {b"m": [b"y"]}}),
    ('{"k": "caf\u00e9"}', {b"k": "café".encode()}),
    ('"hi"', b"hi"),  # a JSON string at the top
    ("5", 5),
    ("2.5", 2.5),
    ("true", True),
    ("false", False),
])
def test_mysql_json_from_select_and_binlog_give_the_same_item(select_value, binlog_value):
    tr = build()
    via_select = tr.item(order(notes=select_value))
    via_binlog = tr.item(order(notes=binlog_value))
    assert via_select == via_binlog
    assert via_binlog["notes"] != {"S": str(binlog_value)}


def test_mysql_json_from_binlog_renders_as_mysql_selects_it():
    """The binlog reader's document is rendered as MySQL's SELECT renders JSON, so a row gives one text whichever
    way it came. Expected forms from the MySQL 8.0 manual (JSON functions): JSON_OBJECT('id', 87, 'name', 'carrot')
    -> {"id": 87, "name": "carrot"}; JSON_ARRAY(1, "abc", NULL, TRUE, CURTIME()) -> [1, "abc", null, true,
    "11:30:24.000000"]. A DECIMAL inside JSON keeps its digits; a DATETIME is a quoted string with microseconds.
    (No MySQL 8 server here: MariaDB stores JSON as text, so the binlog gives the text itself.)"""
    assert neutral_value(col("notes"), {"id": 87, "name": "carrot"}) == {"S": '{"id": 87, "name": "carrot"}'}
    arr = [1, "abc", None, True, dt.timedelta(hours=11, minutes=30, seconds=24)]
    assert neutral_value(col("notes"), arr) == {"S": '[1, "abc", null, true, "11:30:24.000000"]'}
    assert neutral_value(col("notes"), {"a": [1, "é"]}) == {"S": '{"a": [1, "é"]}'}
    doc = {"price": Decimal("1.50"), "at": dt.datetime(2024, 3, 5, 6, 7, 8)}
    assert neutral_value(col("notes"), doc) == {"S": '{"price": 1.50, "at": "2024-03-05 06:07:08.000000"}'}
    assert neutral_value(col("notes"), {b"a": [1, b"x"]}) == {"S": '{"a": [1, "x"]}'}


@pytest.mark.parametrize("column_type,select_value,binlog_value", [
    ("bit(1)", b"\x01", "1"),
    ("bit(8)", b"\x05", "00000101"),
    ("bit(10)", b"\x02\x01", "1000000001"),
    ("bit(64)", b"\xff" * 8, "1" * 64),
])
def test_bit_from_select_and_binlog_give_the_same_neutral_value(column_type, select_value, binlog_value):
    bit = Column("b", "bit", column_type)
    assert neutral_value(bit, select_value) == neutral_value(bit, binlog_value) == {"B": select_value}


def test_row_item():
    item = row_item(ORDERS, {"order_id": 1, "comment": None, "not_a_column": 5})
    assert item == {TABLE_ATTR: {"S": "orders"}, "order_id": {"N": "1"}, "comment": {"NULL": True}}


def test_set_values_parse_quotes():
    c = Column("s", "set", "set('a','it''s','c,d')")
    assert c.set_values == ["a", "it's", "c,d"]
    assert Column("s", "varchar", "varchar(3)").set_values == []
    assert neutral_value(Column("s", "set", "set('z','a')"), {"a", "z"}) == {"S": "z,a"}


@pytest.mark.parametrize("column,cast", [
    (Column("a", "json", "json"), "json"),
    (Column("a", "longtext", "longtext", json=True), "json"),
    (Column("a", "decimal", "decimal(5,2)"), "number"),
    (Column("a", "year", "year(4)"), "number"),
    (Column("a", "timestamp", "timestamp"), "epoch_ms"),
    (Column("a", "varbinary", "varbinary(4)"), "binary"),
    (Column("a", "bit", "bit(3)"), "binary"),
    (Column("a", "set", "set('x')"), "set"),
    (Column("a", "enum", "enum('x')"), "string"),
    (Column("a", "time", "time"), "string"),
])
def test_default_casts(column, cast):
    assert column.default_cast("epoch_ms") == cast


def test_table_schema_json_round_trip():
    assert TableSchema.from_json(ORDERS.to_json()) == ORDERS
    assert ORDERS.to_json()["columns"][12] == {"name": "extra", "data_type": "longtext", "column_type": "longtext",
                                               "json": True}


def test_two_columns_side_by_side_in_a_key_template_are_refused():
    with pytest.raises(RecordError, match=r"sort_key: 'O#\{order_id\}\{code\}' puts two columns side by side"):
        build(with_sort("O#{order_id}{code}"))


def test_escaping_is_for_key_templates_of_migrations_that_began_with_it():
    """A separator inside a value is escaped in key attributes only; a computed (GSI) attribute keeps the plain
    text, and a migration whose preflight was recorded before escaping existed keeps rendering as it began."""
    tables = with_sort("{code}#{order_id}", computed={"GSI1SK": "{code}#{order_id}"})
    tr = build(tables)
    item = tr.item(order(code="a#b"))
    assert item["SK"] == {"S": "a\\#b#42"} and item["GSI1SK"] == {"S": "a#b#42"}
    old = RelationalTransform.from_spec(parse_spec(spec_yaml(copy.deepcopy(tables))), {s.name: s for s in SCHEMAS},
                                        escape=False)
    assert old.item(order(code="a#b"))["SK"] == {"S": "a#b#42"}


def test_the_target_key_of_a_primary_key_alone_where_the_templates_allow_it():
    tr = build(with_sort("O#{order_id}"))  # partition O#{order_id}, sort O#{order_id}: primary key only
    assert tr.key({"__table": {"S": "orders"}, "order_id": {"N": "42"}}) == {"PK": {"S": "O#42"}, "SK": {"S": "O#42"}}
    with pytest.raises(RecordError, match=r"use columns outside the primary key \(\['customer_id', 'order_date'\]\)"):
        build().key({"__table": {"S": "orders"}, "order_id": {"N": "42"}})
