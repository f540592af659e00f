"""MySQL / MariaDB connections and the replication settings the route requires, and whole source rows (SELECT
or binlog) as neutral items, with converters built once per table.

Every connection runs with ``time_zone = '+00:00'`` so TIMESTAMP values read by SELECT and by the binlog
reader (which decodes them as UTC) agree.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import struct
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Optional

from ...codec import Item
from ...errors import TurnoutError
from .values import TABLE_ATTR, Column, TableSchema, neutral_value

log = logging.getLogger("turnout.mysql")

_INTEGER_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
REQUIRED_SETTINGS = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
                     "binlog_row_metadata": "FULL"}


@dataclass
class MySQLConfig:
    host: str
    port: int = 3306
    user: str = "root"
    password: str = ""
    database: str = ""
    connect_timeout: float = 10
    ssl: Optional[dict] = None
    extra: dict = field(default_factory=dict)

    def connect(self, *, streaming: bool = False):
        import pymysql
        import pymysql.cursors

        kw: dict[str, Any] = dict(host=self.host, port=int(self.port), user=self.user, password=self.password,
                                  database=self.database or None, connect_timeout=self.connect_timeout,
                                  charset="utf8mb4", autocommit=True, init_command="SET time_zone = '+00:00'")
        if self.ssl:
            kw["ssl"] = self.ssl
        if streaming:
            kw["cursorclass"] = pymysql.cursors.SSCursor
        try:
            return pymysql.connect(**kw)
        except pymysql.MySQLError as exc:
            raise TurnoutError(f"cannot connect to MySQL at {self.host}:{self.port} as {self.user!r}: {exc}") from None

    def replication_settings(self) -> dict:
        return {"host": self.host, "port": int(self.port), "user": self.user, "passwd": self.password}


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


_F32 = struct.Struct("<f")
_G = ("%.6g", "%.7g", "%.8g", "%.9g")  # "%.{p}g" % v is f"{v:.{p}g}"


def float32_text(v: float, _pack=_F32.pack, _formats=_G) -> float:
    """The shortest decimal that is the same float32 (what MySQL prints for a FLOAT column)."""
    packed = _pack(v)
    for fmt in _formats:
        x = float(fmt % v)
        if _pack(x) == packed:
            return x
    return v


# ------------------------------------------------------------------------------ whole rows -> neutral items


def _fast(col: Column) -> dict:
    """Exact value type -> the attribute value :func:`neutral_value` gives, for the common types of a column (a
    FLOAT column's floats first become the float32 MySQL stores). Other types go through neutral_value."""
    if col.data_type in ("json", "bit"):
        return {}
    ts = "microseconds" if col.fsp else "seconds"
    order = col.set_values

    def members(v):
        return {"S": ",".join(sorted(v, key=lambda x: order.index(x) if x in order else len(order)))}
    return {set: members, frozenset: members, type(None): lambda v: {"NULL": True}, int: lambda v: {"N": str(v)}, str: lambda v: {"S": v},
            Decimal: lambda v: {"N": format(v, "f")},
            float: (lambda v: {"N": repr(float32_text(v))}) if col.data_type == "float" else (lambda v: {"N": repr(v)}),
            dt.datetime: lambda v: {"S": v.isoformat(sep=" ", timespec=ts)}, dt.date: lambda v: {"S": v.isoformat()},
            bytes: (lambda v: {"B": v}) if col.binary else (lambda v: {"S": v.decode("utf-8", "surrogateescape")})}


def _generic(col: Column):
    """The value as ``neutral_value`` gives it (a FLOAT column's floats first float32), any type."""
    get = _fast(col).get
    if col.data_type == "float":
        def slow(v):
            return neutral_value(col, float32_text(v) if isinstance(v, float) else v)
    else:
        def slow(v):
            return neutral_value(col, v)

    def conv(v):
        f = get(type(v))
        return f(v) if f is not None else slow(v)
    return conv


def _expr(col: Column, i: int, at: str) -> str:
    """Python expression for column ``i`` (value at ``at``): inline for the one type its rows normally hold,
    else its generic converter ``G[i]`` (same result: the inline forms are :func:`_fast`'s)."""
    t = col.data_type
    inline = None
    if t not in ("json", "bit"):
        if t in _INTEGER_TYPES:
            inline = "int", '{"N": str(v)}'
        elif t in ("decimal", "numeric"):
            inline = "Decimal", '{"N": format(v, "f")}'
        elif t == "double":
            inline = "float", '{"N": repr(v)}'
        elif t == "float":
            inline = "float", '{"N": repr(float32_text(v))}'
        elif t in ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum"):
            inline = "str", '{"S": v}'
        elif t in ("datetime", "timestamp"):
            inline = "datetime", f'{{"S": v.isoformat(sep=" ", timespec={"microseconds" if col.fsp else "seconds"!r})}}'
        elif t == "date":
            inline = "date", '{"S": v.isoformat()}'
    if inline is None:
        return f"G[{i}]({at})"
    return f"({inline[1]} if type(v := {at}) is {inline[0]} else {{'NULL': True}} if v is None else G[{i}](v))"


@functools.lru_cache(maxsize=512)
def converters(table: TableSchema) -> tuple:
    """Two functions built once per table, each a whole row as ``row_item`` gives it (after a FLOAT column's floats
    became float32 text): from its values in column order (a SELECT row), and from a column -> value mapping (a
    binlog row image holding exactly the table's columns). Column names are data here, never code."""
    g = tuple(_generic(c) for c in table.columns)
    env = {"G": g, "N": tuple(c.name for c in table.columns), "T": TABLE_ATTR, "TV": table.name,
           "int": int, "str": str, "float": float, "Decimal": Decimal, "datetime": dt.datetime, "date": dt.date,
           "float32_text": float32_text}
    out = []
    for at in ("r[{i}]", "r[N[{i}]]"):
        body = ", ".join(f"N[{i}]: {_expr(c, i, at.format(i=i))}" for i, c in enumerate(table.columns))
        code = f"def build(r):\n    return {{T: {{'S': TV}}, {body}}}\n"
        ns: dict = {}
        exec(compile(code, f"<turnout row converter {table.name!r}>", "exec"), dict(env), ns)  # noqa: S102
        out.append(ns["build"])
    return tuple(out)


def image(table: TableSchema, values: Any) -> Item:
    """A whole SELECT row (every column's value, in the table's column order) as a neutral item with ``__table``."""
    return converters(table)[0](values)
