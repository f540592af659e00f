"""The capture/export fast paths give exactly what the plain paths give: the per-table row converters
(``client.converters``) vs ``row_item`` (after FLOAT columns became float32 text), and the msgspec JSON lines of
the change log and export chunks vs ``json.dumps`` of the codec's JSON form."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal

import pytest

from turnout import changelog
from turnout.adapters.mysql.binlog import BinlogChangeReader, SchemaChanged
from turnout.adapters.mysql.client import converters, float32_text, image
from turnout.adapters.mysql.values import Column, TableSchema, row_item
from turnout.chunks import JsonlChunks, plain_wire
from turnout.codec import DYNAMODB, item_to_json
from turnout.ports import Change
from turnout.staging import LocalStaging

T = TableSchema("t`x", (
    Column("id", "bigint", "bigint(20) unsigned"), Column("small", "tinyint", "tinyint(1)"),
    Column("dec", "decimal", "decimal(30,10)"), Column("f", "float", "float"), Column("d", "double", "double"),
    Column("s", "varchar", "varchar(20)"), Column("txt", "longtext", "longtext", json=True),
    Column("e", "enum", "enum('a','b')"), Column("st", "set", "set('x','y','z')"),
    Column("day", "date", "date"), Column("at", "datetime", "datetime"), Column("at6", "timestamp", "timestamp(6)"),
    Column("tm", "time", "time"), Column("yr", "year", "year"), Column("bin", "varbinary", "varbinary(8)"),
    Column("blob", "blob", "blob"), Column("bits", "bit", "bit(10)"), Column("js", "json", "json"),
    Column("we'ird \" name}", "varchar", "varchar(5)")), ("id",))

ROWS = [
    [1, 0, Decimal("12345678901234567890.0000000001"), 1.100000023841858, 0.1, "a", '{"a": 1}', "a", {"z", "x"},
     dt.date(2024, 3, 5), dt.datetime(2024, 3, 5, 1, 2, 3), dt.datetime(2024, 3, 5, 1, 2, 3), dt.timedelta(hours=-1),
     2024, b"\x00\xff", b"\x01", "0000000101", {"k": [1, 2.5, None]}, "x"],
    [None] * 19,
    # unusual types for a column: the generic path (bools, ints in text columns, text in number columns...)
    [True, False, "7", 2, Decimal("1.5"), 5, b"caf\xc3\xa9 \xff", 1, "x,y", dt.datetime(2024, 1, 1), dt.date(2024, 1, 2),
     dt.datetime(2024, 1, 1, 0, 0, 0, 500), dt.timedelta(seconds=1.5), "2024", bytearray(b"\x02"), "text", b"\x03",
     '{"b": 2}', 3],
]


def _plain(row: list) -> dict:
    vals = {c.name: (float32_text(v) if c.data_type == "float" and isinstance(v, float) else v)
            for c, v in zip(T.columns, row)}
    return row_item(T, vals)


@pytest.mark.parametrize("row", ROWS)
def test_row_converters_match_row_item(row):
    want = _plain(row)
    by_position, by_name = converters(T)
    assert image(T, tuple(row)) == want
    assert by_position(row) == want
    assert by_name({c.name: v for c, v in zip(T.columns, row)}) == want


def test_binlog_images_check_columns():
    class Src:
        database = "db"

        def schemas(self):
            return {T.name: T}

    rd = BinlogChangeReader(Src(), {"file": "b.000001", "pos": 4}, None)  # type: ignore[arg-type]
    from turnout.adapters.mysql.binlog import _plan

    values = {c.name: v for c, v in zip(T.columns, ROWS[0])}
    assert rd._img(T, values, _plan(T)) == _plain(ROWS[0])
    with pytest.raises(SchemaChanged, match="changed during the migration"):
        rd._img(T, {**values, "new_col": 1}, _plan(T))
    with pytest.raises(SchemaChanged, match="changed during the migration"):
        rd._img(T, {k: v for k, v in values.items() if k != "s"}, _plan(T))
    with pytest.raises(SchemaChanged, match="binlog_row_metadata"):
        rd._img(T, {f"UNKNOWN_COL{i}": v for i, v in enumerate(ROWS[0])}, _plan(T))


def _lines(data: bytes) -> list[dict]:
    return [json.loads(x) for x in gzip.decompress(data).splitlines()]


def _old_lines(docs: list) -> list[dict]:
    body = "".join(json.dumps(d, separators=(",", ":"), ensure_ascii=False) + "\n" for d in docs)
    return [json.loads(x) for x in body.splitlines()]


IMG = image(T, tuple(ROWS[0]))
ODD = {"__table": {"S": "t"}, "id": {"N": "1"}, "m": {"M": {"b": {"B": b"\x00"}}}, "l": {"L": [{"BOOL": True}]},
       "ss": {"SS": ["a"]}, "bs": {"BS": [b"\x01"]}}


def test_plain_wire():
    assert plain_wire(IMG) and plain_wire({"a": {"B": b"x"}, "b": {"NULL": True}, "c": {"BOOL": False}})
    assert not plain_wire(ODD)
    assert not plain_wire({"a": {"N": Decimal("1")}}) and not plain_wire({"a": {"S": "x", "N": "1"}})
    assert not plain_wire({"a": {"X": "1"}}) and not plain_wire({"a": "x"}) and not plain_wire([])


def test_change_log_lines_match_the_standard_encoding(tmp_path):
    st = LocalStaging(str(tmp_path))
    key = {"__table": {"S": T.name}, "id": IMG["id"]}
    changes = [Change(key=key, op="put", image=IMG, version=[1, 99, 50, 0], created_at=1700000000.0,
                      origin="b.000001:99#0", old_image=IMG),
               Change(key=key, op="delete", image=None, version=[1, 99, 50, 1], created_at=1700000000.0,
                      origin="b.000001:99#1", old_image=IMG),
               Change(key={"__table": {"S": "t"}, "id": {"N": "1"}}, op="put", image=ODD, version=[2**70],
                      created_at=1.5, origin="o")]
    assert changelog.write_file(st, 0, changes, 1700000001.25)
    got = _lines(st.get_bytes(changelog.file_key(0)))
    assert got == _old_lines([changelog.encode(c, 1700000001.25) for c in changes])
    back = changelog.read_file(st, 0)
    assert [(c.key, c.op, c.image, c.version, c.created_at, c.origin, c.old_image) for c in back] == \
        [(c.key, c.op, c.image, c.version, c.created_at, c.origin, c.old_image) for c in changes]
    assert not changelog.write_file(st, 0, changes[:1], 1.0)  # written once
    assert changelog.read_file(st, 0)[0].version == [1, 99, 50, 0]


def test_change_log_keeps_failing_closed(tmp_path):
    st = LocalStaging(str(tmp_path))
    bad = Change(key={"__table": {"S": "t"}}, op="put", image={"a": {"N": Decimal("1")}}, version=[1], created_at=1.0)
    with pytest.raises(TypeError):  # as json.dumps always refused it
        changelog.write_file(st, 0, [bad], 1.0)
    surrogate = Change(key={"__table": {"S": "t"}}, op="put", image={"a": {"S": "x\udcff"}}, version=[1],
                       created_at=1.0)
    with pytest.raises(UnicodeEncodeError):
        changelog.write_file(st, 0, [surrogate], 1.0)
    assert not st.exists(changelog.file_key(0))


def test_mysql_export_chunks_are_written_unchecked_and_the_same(tmp_path):
    """The MySQL source's chunk format skips the plain-item walk (its row converters give plain wire items only):
    its chunks are byte for byte what the checked path writes, and read back to the same items."""
    from turnout.adapters import mysql as mysql_adapter

    fmt = mysql_adapter.SOURCE.chunks()
    assert fmt.plain
    st = LocalStaging(str(tmp_path))
    recs = [image(T, tuple(r)) for r in ROWS]
    assert all(plain_wire(r) for r in recs)  # the claim the unchecked path rests on
    bad = recs.pop()  # text that is not UTF-8 (a lone surrogate): refused by both paths, as json.dumps refused it
    for f, key in ((fmt, "export/bad-p"), (JsonlChunks(DYNAMODB), "export/bad-c")):
        with pytest.raises(UnicodeEncodeError):
            f.write(st, key, [*recs, bad], {})
        assert not st.exists(key + ".jsonl.gz")
    name, size = fmt.write(st, "export/p", recs, {})
    checked, _ = JsonlChunks(DYNAMODB).write(st, "export/c", recs, {})
    data = st.get_bytes(name)
    assert size == len(data) and gzip.decompress(data) == gzip.decompress(st.get_bytes(checked))
    assert _lines(data) == _old_lines([item_to_json(r) for r in recs])
    assert [r for r, _ in fmt.read(st, name)] == recs


def test_export_chunk_lines_match_the_standard_encoding(tmp_path):
    st = LocalStaging(str(tmp_path))
    recs = [IMG, ODD, image(T, tuple(ROWS[1]))]
    name, size = JsonlChunks(DYNAMODB).write(st, "export/x", recs, {})
    data = st.get_bytes(name)
    assert size == len(data) and _lines(data) == _old_lines([item_to_json(r) for r in recs])
    assert [r for r, _ in JsonlChunks(DYNAMODB).read(st, name)] == recs
