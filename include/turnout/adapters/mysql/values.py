"""Relational rows as neutral items, and the casts and key templates of the key redesign (pure)."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import re
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Optional

from ...codec import Item
from ...errors import RecordError
from ...spec import template_fields
from .jsontext import _json_plain, _time_text, mysql_json_text

TABLE_ATTR = "__table"
MAX_DIGITS = 38  # DynamoDB numbers: 38 significant digits, magnitude 1E-130 .. 9.9999E+125
_EXACT = Context(prec=200)  # Decimal's default context rounds to 28 digits: never use it on values

_NUMBER_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float",
                 "double", "real", "year"}
_SPATIAL_TYPES = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
                  "geometrycollection", "geomcollection"}  # stored as SRID + WKB bytes: carried as bytes
_BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"} | _SPATIAL_TYPES
_DATE_TYPES = {"date", "datetime", "timestamp"}


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # information_schema DATA_TYPE, lower case
    column_type: str = ""  # e.g. "bigint(20) unsigned", "set('a','b')"
    json: bool = False  # a JSON column (MariaDB: LONGTEXT with a json_valid check)

    @property
    def fsp(self) -> int:
        """Fractional seconds precision of a DATETIME/TIMESTAMP/TIME column (``datetime(3)`` -> 3)."""
        m = re.match(r"^(?:datetime|timestamp|time)\((\d)\)", self.column_type)
        return int(m.group(1)) if m else 0

    @property
    def binary(self) -> bool:
        return self.data_type in _BINARY_TYPES

    @property
    def set_values(self) -> list[str]:
        m = re.match(r"^set\((.*)\)$", self.column_type, re.I)
        return [v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'", m.group(1))] if m else []

    def default_cast(self, datetime_format: str) -> str:
        t = self.data_type
        if self.json or t == "json":
            return "json"
        if t in _NUMBER_TYPES:
            return "number"
        if t in _DATE_TYPES:
            return datetime_format
        if t in _BINARY_TYPES:
            return "binary"
        if t == "set":
            return "set"
        return "string"


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    def column(self, name: str) -> Optional[Column]:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    def to_json(self) -> dict:
        return {"name": self.name, "primary_key": list(self.primary_key),
                "columns": [{"name": c.name, "data_type": c.data_type, "column_type": c.column_type, "json": c.json}
                            for c in self.columns]}

    @classmethod
    def from_json(cls, d: dict) -> "TableSchema":
        return cls(d["name"], tuple(Column(**c) for c in d["columns"]), tuple(d["primary_key"]))


# ------------------------------------------------------------------------------ rows -> neutral items


def neutral_value(col: Column, v: Any) -> dict:
    """One column value (as pymysql or the binlog reader gives it) as a neutral attribute value."""
    if v is None:
        return {"NULL": True}
    if col.data_type == "json" and not isinstance(v, str):  # MySQL JSON as the binlog reader decodes it
        return {"S": mysql_json_text(_json_plain(v))}
    if col.data_type == "bit" and isinstance(v, str):  # the binlog reader gives BIT(M) as M '0'/'1' characters
        return {"B": int(v or "0", 2).to_bytes((len(v) + 7) // 8, "big")}
    if isinstance(v, bool):
        return {"N": "1" if v else "0"}
    if isinstance(v, int):
        return {"N": str(v)}
    if isinstance(v, Decimal):
        return {"N": format(v, "f")}
    if isinstance(v, float):
        return {"N": repr(v)}
    if isinstance(v, (bytes, bytearray)):
        if col.binary:
            return {"B": bytes(v)}
        return {"S": bytes(v).decode("utf-8", "surrogateescape")}
    if isinstance(v, dt.datetime):  # one width per column: a zero fraction still has its digits (text sorts)
        return {"S": v.isoformat(sep=" ", timespec="microseconds" if col.fsp else "seconds")}
    if isinstance(v, dt.date):
        return {"S": v.isoformat()}
    if isinstance(v, dt.timedelta):
        return {"S": _time_text(v)}
    if isinstance(v, (set, frozenset)):
        order = col.set_values
        return {"S": ",".join(sorted(v, key=lambda x: order.index(x) if x in order else len(order)))}
    if isinstance(v, (dict, list)):  # a JSON column decoded by the binlog reader
        return {"S": json.dumps(v, separators=(",", ":"), ensure_ascii=False)}
    return {"S": str(v)}



def row_item(table: TableSchema, row: dict) -> Item:
    """A row (column -> value) as a neutral item with ``__table``."""
    item: Item = {TABLE_ATTR: {"S": table.name}}
    for c in table.columns:
        if c.name in row:
            item[c.name] = neutral_value(c, row[c.name])
    return item


def source_key(table: TableSchema, item: Item) -> Item:
    return {TABLE_ATTR: {"S": table.name}, **{k: item[k] for k in table.primary_key}}


# ------------------------------------------------------------------------------ casts


def _fail(table: str, key: Any, column: str, msg: str) -> RecordError:
    return RecordError(f"table {table!r} key {key}: column {column!r}: {msg}", key=None)


_SHORT_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


def check_number(text: str) -> str:
    """A DynamoDB number, exactly, or ValueError saying why not. A short plain decimal (at most 28 characters:
    within DynamoDB's digits and range, written without an exponent) without Decimal: leading and trailing zeros
    dropped, -0 is 0 (what :func:`check_number_by_decimal` gives it)."""
    m = _SHORT_DECIMAL.fullmatch(text) if text.__class__ is str and len(text) <= 28 else None
    if m is None:
        return check_number_by_decimal(text)
    sign, whole, frac = m.groups()
    whole, frac = whole.lstrip("0"), (frac or "").rstrip("0")
    if not whole and not frac:
        return "0"
    return sign + (whole or "0") + ("." + frac if frac else "")


def check_number_by_decimal(text: str) -> str:
    """:func:`check_number` by Decimal, for any text."""
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not d.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    if d.is_zero():
        return "0"
    t = d.as_tuple()
    digits = "".join(map(str, t.digits)).strip("0") or "0"
    if len(digits) > MAX_DIGITS:
        raise ValueError(f"{text} has {len(digits)} significant digits; DynamoDB numbers hold {MAX_DIGITS} "
                         "(cast the column to string)")
    exp = d.adjusted()
    if exp > 125 or exp < -130:
        raise ValueError(f"{text} is outside DynamoDB's number range (1E-130 .. 9.9E+125)")
    n = d.normalize(_EXACT)
    return format(n, "f") if -30 < exp < 40 else str(n)


_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?)?$")


def _parse_datetime(text: str) -> tuple[dt.datetime, bool, bool]:
    """(value, had a time part, had fractional seconds); ValueError on a zero or malformed date."""
    m = _DATETIME.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a date/time")
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if y == 0 or mo == 0 or d == 0:
        raise ValueError(f"zero date {text!r} has no calendar value (fix the row or cast the column to string)")
    hh = int(m.group(4) or 0)
    frac = (m.group(7) or "").ljust(6, "0")
    value = dt.datetime(y, mo, d, hh, int(m.group(5) or 0), int(m.group(6) or 0), int(frac or 0))
    return value, m.group(4) is not None, bool(m.group(7))


@functools.lru_cache(maxsize=4096)  # a row's date is rendered for its key and again for its attribute
def _iso(text: str, data_type: str, fsp: int = 0) -> str:
    """ISO-8601 text; a column with fractional seconds (fsp > 0) always gets them, so its texts have one width
    (also for a text staged without its zero fraction by an earlier release)."""
    value, has_time, has_frac = _parse_datetime(text)
    if not has_time and data_type == "date":
        return value.date().isoformat()
    out = value.isoformat(timespec="microseconds" if has_frac or fsp else "seconds")
    return out + "Z" if data_type == "timestamp" else out


def _epoch(text: str, scale: int) -> str:
    value, _, _ = _parse_datetime(text)
    delta = value - dt.datetime(1970, 1, 1)
    us = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return check_number(str(_EXACT.divide(Decimal(us) * scale, Decimal(1_000_000))))


def _json_av(v: Any, where: str) -> dict:
    if v is None:
        return {"NULL": True}
    if isinstance(v, bool):
        return {"BOOL": v}
    if isinstance(v, (int, Decimal)):
        try:
            return {"N": check_number(str(v))}
        except ValueError as exc:
            raise ValueError(f"at {where}: {exc}") from None
    if isinstance(v, str):
        return {"S": v}
    if isinstance(v, list):
        return {"L": [_json_av(x, f"{where}[{i}]") for i, x in enumerate(v)]}
    if isinstance(v, dict):
        return {"M": {k: _json_av(x, f"{where}.{k}") for k, x in v.items()}}
    raise ValueError(f"at {where}: unsupported JSON value {v!r:.40}")


def cast_value(col: Column, cast: str, av: dict) -> Optional[dict]:
    """A neutral attribute value as the target's, by the cast; None for an empty SET. ValueError says why not."""
    (tag, v), = av.items()
    if tag == "NULL":
        return av
    text = base64.b64encode(v).decode() if tag == "B" else v
    if cast == "string":
        return {"S": text}
    if cast == "number":
        return {"N": check_number(text)}
    if cast == "bool":
        if tag == "N":
            return {"BOOL": Decimal(text) != 0}
        low = text.strip().lower()
        if low in ("true", "false", "1", "0", "yes", "no"):
            return {"BOOL": low in ("true", "1", "yes")}
        raise ValueError(f"{text!r} is not a boolean")
    if cast == "binary":
        return {"B": v if tag == "B" else text.encode()}
    if cast == "set":
        members = [m for m in text.split(",") if m != ""] if tag == "S" else [text]
        return {"SS": sorted(set(members))} if members else None
    if cast == "json":
        if tag != "S":
            raise ValueError("only text holds JSON")
        try:
            doc = json.loads(text, parse_float=Decimal, parse_int=Decimal)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        return _json_av(doc, "$")
    if cast == "iso":
        return {"S": _iso(text, col.data_type, col.fsp)}
    if cast == "epoch":
        return {"N": _epoch(text, 1)}
    if cast == "epoch_ms":
        return {"N": _epoch(text, 1000)}
    raise ValueError(f"unknown cast {cast!r}")


def _key_text(col: Column, av: dict, width: int) -> str:
    (tag, v), = av.items()
    if tag == "NULL":
        raise ValueError("is NULL")
    if tag == "B":
        raise ValueError("is binary; a key template takes text, numbers and dates")
    if tag == "N":
        n = check_number(v)
        if width:
            if "." in n or "E" in n:
                raise ValueError(f"zero-padding :0{width} needs an integer, got {n}")
            return ("-" + n[1:].rjust(width, "0")) if n.startswith("-") else n.rjust(width, "0")
        return n
    if col.data_type in _DATE_TYPES:
        return _iso(v, "date" if col.data_type == "date" else "datetime", col.fsp)
    return v.rjust(width, "0") if width else v


class _Template:
    def __init__(self, text: str, escape: bool = False):
        self.text = text
        self.fields = template_fields(text)
        parts: list[tuple[str, Any]] = []
        pos = 0
        body = text
        pattern = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
        regex = ""
        for m in pattern.finditer(body):
            lit = body[pos : m.start()]
            parts.append(("lit", lit))
            regex += re.escape(lit)
            if m.group(0) == "{{":
                parts.append(("lit", "{"))
                regex += re.escape("{")
            elif m.group(0) == "}}":
                parts.append(("lit", "}"))
                regex += re.escape("}")
            else:
                name, _, w = m.group(1).partition(":")
                parts.append(("col", (name, int(w) if w else 0)))
                regex += "(.*?)"
            pos = m.end()
        parts.append(("lit", body[pos:]))
        regex += re.escape(body[pos:])
        self.parts = parts
        # a value holding a separator that follows a column ({a}#{b}, a = "x#y") could render what another row
        # renders: those characters (and the escape character) are escaped in column values, reversibly
        after = "".join(x for i, (k, x) in enumerate(parts) if k == "lit" and any(kk == "col" for kk, _ in parts[:i]))
        self.escape = sorted(set(after) | {"\\"}) if after and escape else []  # keys only, not computed attributes
        self.regex = re.compile("^" + regex + "$", re.S)

    def render(self, table: "TableSchema", item: Item, on_error) -> Optional[str]:
        out = []
        for kind, x in self.parts:
            if kind == "lit":
                out.append(x)
                continue
            name, width = x
            col = table.column(name)
            if col is None:
                return on_error(name, "no such column")
            av = item.get(name, {"NULL": True})
            try:
                text = _key_text(col, av, width)
            except ValueError as exc:
                return on_error(name, str(exc))
            if self.escape and any(c in text for c in self.escape):
                text = "".join("\\" + c if c in self.escape else c for c in text)
            out.append(text)
        return "".join(out)
