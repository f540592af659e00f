"""Turnout's own binlog row decoder (``adapters/mysql/rowdecode.py``) gives exactly the values mysql-replication
gives (``ev.rows``: the reference, not Turnout code) for the same events of a real MariaDB binlog: every column
type it reads, their limits, NULLs, zero dates, negative times, several character sets, multi-row events of
each kind. Where it does not read an event whole (a BIT column, a MINIMAL row image) it says so (None) and the
capture reads ``ev.rows`` instead.
"""

from __future__ import annotations

import pytest

import workload_mysql as wm
from test_engine_mysql import sql, uniq
from turnout.adapters.mysql.rowdecode import rows_of
from turnout.errors import TurnoutError

pytestmark = pytest.mark.server

COLUMNS = [
    ("id", "INT NOT NULL PRIMARY KEY"),
    ("ti", "TINYINT"), ("tiu", "TINYINT UNSIGNED"), ("si", "SMALLINT"), ("siu", "SMALLINT UNSIGNED"),
    ("mi", "MEDIUMINT"), ("miu", "MEDIUMINT UNSIGNED"), ("i", "INT"), ("iu", "INT UNSIGNED"),
    ("bi", "BIGINT"), ("biu", "BIGINT UNSIGNED"), ("f", "FLOAT"), ("d", "DOUBLE"),
    ("dec1", "DECIMAL(5,2)"), ("dec2", "DECIMAL(38,10)"), ("dec3", "DECIMAL(10,0)"), ("dec4", "DECIMAL(4,4)"),
    ("dec5", "DECIMAL(65,30)"), ("dec6", "DECIMAL(19,9)"),
    ("vc", "VARCHAR(10)"), ("vcl", "VARCHAR(300)"), ("ch", "CHAR(5)"), ("lat", "VARCHAR(20) CHARACTER SET latin1"),
    ("vb", "VARBINARY(20)"), ("bn", "BINARY(4)"), ("tx", "TEXT"), ("mt", "MEDIUMTEXT"), ("bl", "BLOB"),
    ("lb", "LONGBLOB"), ("dt0", "DATETIME"), ("dt1", "DATETIME(1)"), ("dt3", "DATETIME(3)"), ("dt6", "DATETIME(6)"),
    ("ts0", "TIMESTAMP NULL DEFAULT NULL"), ("ts3", "TIMESTAMP(3) NULL DEFAULT NULL"),
    ("ts5", "TIMESTAMP(5) NULL DEFAULT NULL"), ("dd", "DATE"), ("tm", "TIME"), ("tm2", "TIME(2)"),
    ("tm5", "TIME(5)"), ("y", "YEAR"), ("e", "ENUM('a','b','ccc')"), ("st", "SET('x','y','z')"), ("j", "JSON"),
]
DDL = ", ".join(f"{n} {t}" + ("" if "NULL" in t or "KEY" in t else " NULL") for n, t in COLUMNS)
NAMES = [n for n, _t in COLUMNS]

MAX = ("127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, "
       "18446744073709551615, 3.4e38, 1.7976931348623157e308, 999.99, 9999999999999999999999999999.9999999999, "
       "9999999999, 0.9999, 99999999999999999999999999999999999.999999999999999999999999999999, 1234567890.123456789, "
       "'ten chars!', REPEAT('é', 300), 'abcde', 'Grüße', X'00ff10', X'01020304', REPEAT('t', 65535), "
       "REPEAT('m', 70000), X'000102', REPEAT(X'ab', 70000), '9999-12-31 23:59:59', '9999-12-31 23:59:59.9', "
       "'9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07', '2038-01-19 03:14:07.999', "
       "'2038-01-19 03:14:07.99999', '9999-12-31', '838:59:59', '838:59:59.99', '838:59:59.99999', 2155, 'ccc', "
       "'x,y,z', '{\"a\": [1, 2.5, \"s\"], \"b\": null}'")
MIN = ("-128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, -3.4e38, -1.7976931348623157e308, "
       "-999.99, -9999999999999999999999999999.9999999999, -9999999999, -0.9999, "
       "-99999999999999999999999999999999999.999999999999999999999999999999, -0.000000001, "
       "'', '', '', '', X'', X'00', '', '', X'', X'', '1000-01-01 00:00:00', '1000-01-01 00:00:00.1', "
       "'1000-01-01 00:00:00.001', '1000-01-01 00:00:00.000001', '1970-01-01 00:00:01', '1970-01-01 00:00:01.001', "
       "'1970-01-01 00:00:01.00001', '1000-01-01', '-838:59:59', '-00:00:01.5', '-12:34:56.00001', 1901, 'a', "
       "'', '[]'")
TYPICAL = ("-5, 5, -300, 300, -70000, 70000, -7, 7, -12345678901, 12345678901, 0.1, -2.5e-300, 1.5, -0.0000000001, "
           "0, -0.0001, 1.000000000000000000000000000001, -123.5, 'emoji 🎉', 'ß', 'ab', 'café', X'7f', X'61620000', "
           "'text', 'κείμενο', X'deadbeef', X'', '2024-02-29 12:00:00', '2024-02-29 12:00:00.5', "
           "'2024-02-29 12:00:00.010', '2024-02-29 12:00:00.000010', '2024-02-29 12:00:00', "
           "'2024-02-29 12:00:00.100', '2024-02-29 12:00:00.00001', '2024-02-29', '00:00:00', '-00:00:00.01', "
           "'01:02:03.00004', 2024, 'b', 'y', '\"just a string\"'")


def _read(stack, db, since: tuple) -> list:
    """Every rows event of ``db`` since a position: (table, event class name, what rows_of gave, what ev.rows gave
    or the error it raised)."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    ep = stack["mariadb"]
    r = BinLogStreamReader(connection_settings={"host": ep["host"], "port": ep["port"], "user": ep["user"],
                                                "passwd": ep["password"]},
                           server_id=4393, resume_stream=True, log_file=since[0], log_pos=since[1], blocking=False,
                           only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent], only_schemas=[db])
    out = []
    try:
        for ev in r:
            ours = rows_of(ev)  # first: it must leave the event for the library to read whole
            try:
                lib = ev.rows
            except Exception as exc:  # what the library cannot decode
                lib = exc
            out.append((ev.table, type(ev).__name__, ours, lib))
    finally:
        r.close()
    return out


def _same(value) -> tuple:
    """A value as type and exact text: Decimal('1.10') is not Decimal('1.1'), 1 is not True."""
    if isinstance(value, set):
        return ("set", sorted(value))
    if isinstance(value, dict):
        return ("dict", [(k, _same(v)) for k, v in value.items()])
    return (type(value).__name__, repr(value))


def _library_images(rows: list) -> list:
    """The library's rows with only their images (not its notes of why a value is None)."""
    keep = ("values", "before_values", "after_values")
    return [_same({k: row[k] for k in keep if k in row}) for row in rows]


def test_turnouts_row_decoder_gives_what_the_library_gives_for_every_type_and_kind(stack):
    db = uniq("rowdec")
    wm.create_database(stack["mariadb"], db)
    since = tuple(sql(stack, ["SHOW MASTER STATUS"])[0][0][:2])
    cols = ", ".join(NAMES[1:])
    sql(stack, [
        f"CREATE TABLE alltypes ({DDL}) ENGINE=InnoDB",
        "CREATE TABLE withbit (id INT PRIMARY KEY, b BIT(10) NULL, v VARCHAR(5) NULL)",
        f"INSERT INTO alltypes (id, {cols}) VALUES (1, {MAX})",
        f"INSERT INTO alltypes (id, {cols}) VALUES (2, {MIN}), (3, {TYPICAL})",
        "INSERT INTO alltypes (id) VALUES (4), (5)",  # every other column NULL
        "SET SESSION sql_mode = ''",
        "INSERT INTO alltypes (id, dt0, dt6, dd) VALUES (6, '0000-00-00 00:00:00', '2024-00-10 00:00:00', "
        "'2024-00-00')",  # zero dates: the library gives None
        "UPDATE alltypes SET vc = CONCAT('u', id), dec2 = -dec2, tm5 = '-01:00:00.5' WHERE id IN (1, 2, 3, 4)",
        "UPDATE alltypes SET j = '{\"n\": 1}', st = 'x,z', e = 'a' WHERE id > 2",
        "DELETE FROM alltypes WHERE id IN (2, 5)",
        "INSERT INTO withbit VALUES (1, b'1010101010', 'v'), (2, NULL, NULL)",
        "SET SESSION binlog_row_image = 'MINIMAL'",
        "UPDATE alltypes SET vc = 'min' WHERE id = 3",
    ], db)
    events = _read(stack, db, since)
    assert not [lib for _t, _k, _o, lib in events if isinstance(lib, Exception)]
    kinds = {(t, k) for t, k, _o, _l in events}
    assert {("alltypes", "WriteRowsEvent"), ("alltypes", "UpdateRowsEvent"), ("alltypes", "DeleteRowsEvent"),
            ("withbit", "WriteRowsEvent")} <= kinds, kinds
    assert sum(len(lib) for t, _k, _o, lib in events if t == "alltypes") == 6 + 4 + 4 + 2 + 1

    fast = [(t, k, ours, lib) for t, k, ours, lib in events if ours is not None]
    fallback = [(t, k, lib) for t, k, ours, lib in events if ours is None]
    # the library's rows, every one: the decoder read every FULL image of the all-types table itself
    for _t, kind, ours, lib in fast:
        assert [_same(row) for row in ours] == _library_images(lib), kind
    assert sum(len(o) for t, _k, o, _l in fast if t == "alltypes") == 6 + 4 + 4 + 2
    # and it left to the library what it does not read: the BIT column, the MINIMAL image
    assert sorted((t, k) for t, k, _l in fallback) == [("alltypes", "UpdateRowsEvent"), ("withbit", "WriteRowsEvent")]
    # the values really are the edge values (not two decoders agreeing on nothing)
    first = next(o for t, k, o, _l in fast if t == "alltypes" and k == "WriteRowsEvent")[0]["values"]
    assert first["biu"] == 18446744073709551615 and first["bi"] == 9223372036854775807 and first["miu"] == 16777215
    assert str(first["dec5"]) == "99999999999999999999999999999999999.999999999999999999999999999999"
    assert first["vcl"] == "é" * 300 and len(first["lb"]) == 70000 and first["tm5"].total_seconds() > 3_000_000
    zero = next(o for t, k, o, _l in fast if t == "alltypes" and k == "WriteRowsEvent"
                and o[0]["values"]["id"] == 6)[0]["values"]
    assert zero["dt0"] is None and zero["dd"] is None


def _reader(stack, db, tables, since):
    from turnout.adapters.mysql import BinlogChangeReader
    from turnout.adapters.mysql.client import MySQLConfig
    from turnout.adapters.mysql.source import MySQLSource

    ep = stack["mariadb"]
    src = MySQLSource(MySQLConfig(host=ep["host"], port=ep["port"], user=ep["user"], password=ep["password"],
                                  database=db), db, tables, server_id=4394)
    return src, BinlogChangeReader(src, {"file": since[0], "pos": since[1]}, None)


def test_latin1_text_is_decoded_as_the_server_decodes_it_where_the_library_cannot(stack):
    """MySQL's latin1 is Windows-1252 with its five undefined bytes as C1 controls. The library decodes with
    Python's cp1252, which refuses those five: the premise, shown first. Turnout's decoder gives what the server's
    own conversion gives to a SELECT (an utf8mb4 connection), for all 256 bytes, and so does the capture."""
    db = uniq("latin")
    wm.create_database(stack["mariadb"], db)
    since = tuple(sql(stack, ["SHOW MASTER STATUS"])[0][0][:2])
    every = "".join(f"{b:02X}" for b in range(256))
    sql(stack, ["CREATE TABLE lat (id INT PRIMARY KEY, v VARCHAR(300) CHARACTER SET latin1, "
                "t TEXT CHARACTER SET latin1, u VARCHAR(10))",
                f"INSERT INTO lat VALUES (1, X'{every}', X'41818D8F909D80E9', 'ok'), (2, 'plain', NULL, 'ok')",
                "UPDATE lat SET t = X'9D9D' WHERE id = 2"], db)
    server = {r[0]: r[1:] for r in sql(stack, ["SELECT id, v, t FROM lat"], db)[0]}
    events = _read(stack, db, since)
    assert [k for _t, k, _o, _l in events] == ["WriteRowsEvent", "UpdateRowsEvent"]
    # the premise: the library cannot decode either event
    assert [type(lib).__name__ for _t, _k, _o, lib in events] == ["UnicodeDecodeError"] * 2
    ours = events[0][2] + events[1][2]
    assert ours[0]["values"]["v"] == server[1][0] and len(server[1][0]) == 256
    assert ours[0]["values"]["t"] == server[1][1] == "A\x81\x8d\x8f\x90\x9d€é"
    assert ours[2]["after_values"]["t"] == server[2][1] == "\x9d\x9d"

    src, reader = _reader(stack, db, ["lat"], since)
    try:
        poll = reader.poll()
    finally:
        reader.close()
        src.close()
    assert not poll.rejected, poll.rejected
    puts = {c.key["id"]["N"]: c.image for c in poll.changes if c.image}
    assert puts["1"]["v"] == {"S": server[1][0]} and puts["1"]["t"] == {"S": "A\x81\x8d\x8f\x90\x9d€é"}


def test_an_event_nobody_can_decode_stops_the_capture_naming_the_table_and_the_binlog_position(stack):
    """A BIT column leaves the event to the library; a latin1 byte its cp1252 refuses then fails the whole event:
    the transactions before it are handed over, then the capture stops with an error that names the table and
    where in the binlog (the reader's position stays before it)."""
    db = uniq("undec")
    wm.create_database(stack["mariadb"], db)
    since = tuple(sql(stack, ["SHOW MASTER STATUS"])[0][0][:2])
    sql(stack, ["CREATE TABLE bitlat (id INT PRIMARY KEY, b BIT(3), v VARCHAR(10) CHARACTER SET latin1)",
                "INSERT INTO bitlat VALUES (1, b'101', 'fine')",
                "INSERT INTO bitlat VALUES (2, b'011', X'4181')"], db)
    src, reader = _reader(stack, db, ["bitlat"], since)
    try:
        first = reader.poll()  # what was committed before it is handed over first
        at = reader.state()
        with pytest.raises(TurnoutError) as exc:
            reader.poll()
    finally:
        reader.close()
        src.close()
    assert [c.key["id"]["N"] for c in first.changes] == ["1"] and not first.at_tip
    assert at["pos"] > since[1]
    msg = str(exc.value)
    assert f"the rows event of {db}.bitlat cannot be decoded" in msg and "UnicodeDecodeError" in msg, msg
    assert msg.startswith(f"binlog {at['file']}:") and int(msg.split()[1].split(":")[1]) > at["pos"], msg
