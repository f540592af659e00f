"""Relational rows as items, and the key-redesign transform (pure: no database, no Airflow).

A MySQL/MariaDB row travels through staging and the change log as a *neutral* item in DynamoDB's wire
format, lossless and independent of the mapping: integers and DECIMALs as exact ``N`` text, dates and
times as their MySQL text, BLOBs as ``B``, JSON/ENUM/SET as their text, NULL as ``NULL``, plus the
reserved attribute ``__table``. :class:`RelationalTransform` turns a neutral item into the target item
declared by the spec (key templates, renames, drops, casts, computed attributes); the same function runs at
load, at change apply and on the source side of validation.

Under change capture an UPDATE carries its before image: when the target key computed from the before image
differs from the one computed from the after image (a key column changed), the change becomes a delete of the
old item and a put of the new one. A DELETE deletes the item whose key its before image computes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Optional

from .adapters.base import Change, SourceInfo
from .codec import Item
from .errors import RecordError
from .spec import template_fields

TABLE_ATTR = "__table"
MAX_DIGITS = 38  # DynamoDB numbers: 38 significant digits, magnitude 1E-130 .. 9.9999E+125
_EXACT = Context(prec=200)  # Decimal's default context rounds to 28 digits: never use it on values

_NUMBER_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float",
                 "double", "real", "year"}
_BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"}
_DATE_TYPES = {"date", "datetime", "timestamp"}


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # information_schema DATA_TYPE, lower case
    column_type: str = ""  # e.g. "bigint(20) unsigned", "set('a','b')"
    json: bool = False  # a JSON column (MariaDB: LONGTEXT with a json_valid check)

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


def _time_text(v: dt.timedelta) -> str:
    us = v // dt.timedelta(microseconds=1)
    sign, us = ("-" if us < 0 else ""), abs(us)
    s, frac = divmod(us, 1_000_000)
    text = f"{sign}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
    return text + (f".{frac:06d}" if frac else "")


def neutral_value(col: Column, v: Any) -> dict:
    """One column value (as pymysql or the binlog reader gives it) as a neutral attribute value."""
    if v is None:
        return {"NULL": True}
    if col.data_type == "json" and not isinstance(v, str):  # MySQL JSON as the binlog reader decodes it
        return {"S": json.dumps(_json_plain(v), separators=(",", ":"), ensure_ascii=False)}
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
    if isinstance(v, dt.datetime):
        return {"S": v.isoformat(sep=" ")}
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


def _json_plain(v: Any) -> Any:
    """A binlog-decoded JSON document with its bytes (object keys, strings) as str, as SELECT gives them."""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8")
    if isinstance(v, dict):
        return {_json_plain(k): _json_plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_plain(x) for x in v]
    return v


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


def check_number(text: str) -> str:
    """A DynamoDB number, exactly, or ValueError saying why not."""
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


def _iso(text: str, data_type: str) -> str:
    value, has_time, has_frac = _parse_datetime(text)
    if not has_time and data_type == "date":
        return value.date().isoformat()
    out = value.isoformat(timespec="microseconds" if has_frac else "seconds")
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
        return {"S": _iso(text, col.data_type)}
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
        return _iso(v, "date" if col.data_type == "date" else "datetime")
    return v.rjust(width, "0") if width else v


class _Template:
    def __init__(self, text: str):
        self.text = text
        self.fields = template_fields(text)
        parts, pos = [], 0
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
        self.regex = re.compile("^" + regex + "$", re.S)

    def render(self, table: "TableSchema", item: Item, on_error) -> Optional[str]:
        out = []
        for kind, x in self.parts:
            if kind == "lit":
                out.append(x)
                continue
            name, width = x
            col = table.column(name)
            av = item.get(name, {"NULL": True})
            try:
                out.append(_key_text(col, av, width))
            except ValueError as exc:
                return on_error(name, str(exc))
        return "".join(out)


# ------------------------------------------------------------------------------ the transform


@dataclass
class _TablePlan:
    schema: TableSchema
    pk: _Template
    sk: Optional[_Template]
    entity: str
    rename: dict[str, str]
    drop: frozenset[str]
    casts: dict[str, str]  # column -> cast (defaults filled in)
    computed: dict[str, _Template]


@dataclass
class RelationalTransform:
    tables: dict[str, _TablePlan]
    key_names: tuple[str, ...]  # (partition,) or (partition, sort)
    nulls: str = "omit"
    type_attribute: Optional[str] = None
    gsis: list = field(default_factory=list)
    source_key: tuple[str, ...] = (TABLE_ATTR,)  # the leading source key attribute (per-table PKs follow)

    @classmethod
    def from_spec(cls, spec, schemas: dict[str, TableSchema]) -> "RelationalTransform":
        m, t = spec.mapping, spec.target
        key_names = (t.key.partition,) + ((t.key.sort,) if t.key.sort else ())
        plans = {}
        for name, tm in m.tables.items():
            where = f"mapping.tables.{name}"
            schema = schemas.get(name)
            if schema is None:
                raise RecordError(f"{where}: table {name!r} is not in the source database")
            cols = {c.name for c in schema.columns}
            used = {f for tpl in (tm.partition_key, tm.sort_key, *tm.computed.values()) if tpl
                    for f, _ in template_fields(tpl)}
            for col in sorted((used | set(tm.rename) | set(tm.drop) | set(tm.casts)) - cols):
                raise RecordError(f"{where}: column {col!r} is not in table {name!r} (columns: {sorted(cols)})")
            dropped_pk = set(tm.drop) & set(schema.primary_key)
            if dropped_pk:
                raise RecordError(f"{where}.drop: primary key columns {sorted(dropped_pk)} cannot be dropped (they "
                                  "identify the row for change capture and validation)")
            targets = [tm.rename.get(c.name, c.name) for c in schema.columns if c.name not in tm.drop]
            reserved = set(key_names) | set(tm.computed) | ({m.type_attribute} if m.type_attribute else set())
            clash = sorted(set(targets) & reserved)
            if clash:
                raise RecordError(f"{where}: columns map to attributes the key/computed/type attributes use: {clash} "
                                  "(rename them)")
            over = sorted(set(tm.computed) & (set(key_names) | ({m.type_attribute} if m.type_attribute else set())))
            if over:
                raise RecordError(f"{where}: computed attribute(s) {over} would overwrite the key/type attribute "
                                  "(the key comes from partition_key/sort_key)")
            dup = sorted({x for x in targets if targets.count(x) > 1})
            if dup:
                raise RecordError(f"{where}: two columns map to the same attribute: {dup}")
            casts = {c.name: tm.casts.get(c.name) or c.default_cast(m.datetime_format) for c in schema.columns}
            plans[name] = _TablePlan(
                schema=schema, pk=_Template(tm.partition_key), sk=_Template(tm.sort_key) if tm.sort_key else None,
                entity=tm.entity or name, rename=dict(tm.rename), drop=frozenset(tm.drop), casts=casts,
                computed={a: _Template(x) for a, x in tm.computed.items()})
        entities = [p.entity for p in plans.values()]
        if m.type_attribute and len(set(entities)) != len(entities):
            raise RecordError("mapping.tables: two tables share an entity name")
        return cls(plans, key_names, m.nulls, m.type_attribute, list(t.gsis))

    # -- the engine's transform interface

    @property
    def target_key(self) -> tuple[str, ...]:
        return self.key_names

    def _plan(self, item: Item) -> _TablePlan:
        t = item.get(TABLE_ATTR, {}).get("S")
        plan = self.tables.get(t)
        if plan is None:
            raise RecordError(f"row of table {t!r}, which the mapping does not migrate")
        return plan

    def source_key_from(self, item: Item) -> Item:
        plan = self._plan(item)
        try:
            return source_key(plan.schema, item)
        except KeyError as exc:
            raise RecordError(f"table {plan.schema.name!r}: row lacks primary key column {exc.args[0]!r}") from None

    def _pk_text(self, plan: _TablePlan, item: Item) -> str:
        return ",".join(f"{k}={next(iter(item.get(k, {'NULL': None}).values()))}" for k in plan.schema.primary_key)

    def _key(self, plan: _TablePlan, item: Item) -> Item:
        """The target key attributes a neutral item's key templates render."""
        t = plan.schema.name

        def key_error(col, msg):
            raise _fail(t, self._pk_text(plan, item), col, f"{msg} (used in a key template)")

        out: Item = {self.key_names[0]: {"S": plan.pk.render(plan.schema, item, key_error)}}
        if plan.sk is not None:
            out[self.key_names[1]] = {"S": plan.sk.render(plan.schema, item, key_error)}
        for k in self.key_names:
            if out[k]["S"] == "":
                raise _fail(t, self._pk_text(plan, item), k, "the key template renders an empty string")
        return out

    def item(self, item: Item) -> Item:
        plan = self._plan(item)
        t = plan.schema.name
        out = self._key(plan, item)
        if self.type_attribute:
            out[self.type_attribute] = {"S": plan.entity}
        for col in plan.schema.columns:
            name = col.name
            if name in plan.drop or name not in item:
                continue
            av = item[name]
            try:
                v = cast_value(col, plan.casts[name], av)
            except (ValueError, ArithmeticError) as exc:
                raise _fail(t, self._pk_text(plan, item), name, str(exc)) from None
            if v is None or "NULL" in v:
                if self.nulls == "omit":
                    continue
                v = {"NULL": True}
            out[plan.rename.get(name, name)] = v
        for attr, tpl in plan.computed.items():
            text = tpl.render(plan.schema, item, lambda col, msg: None)
            if text is not None:  # a NULL column leaves the attribute out (sparse index)
                out[attr] = {"S": text}
        return out

    def target_key_of(self, target_item: Item) -> Item:
        return {a: target_item[a] for a in self.key_names}

    def group_of(self, target_item: Item) -> Optional[str]:
        plan = self._table_of(target_item)
        return plan.schema.name if plan else None

    def _table_of(self, target_item: Item) -> Optional[_TablePlan]:
        if self.type_attribute and self.type_attribute in target_item:
            ent = target_item[self.type_attribute].get("S")
            for p in self.tables.values():
                if p.entity == ent:
                    return p
            return None
        for p in self.tables.values():
            if not p.pk.regex.match(target_item.get(self.key_names[0], {}).get("S", "\0")):
                continue
            if p.sk is not None and not p.sk.regex.match(target_item.get(self.key_names[1], {}).get("S", "\0")):
                continue
            if all(p.rename.get(k, k) in target_item for k in p.schema.primary_key):
                return p
        return None

    def source_key_of(self, target_item: Item) -> Optional[Item]:
        """The source row a target item came from (for point rechecks), or None when it cannot be told."""
        plan = self._table_of(target_item)
        if plan is None:
            return None
        key: Item = {TABLE_ATTR: {"S": plan.schema.name}}
        for k in plan.schema.primary_key:
            av = target_item.get(plan.rename.get(k, k))
            if av is None:
                return None
            (tag, v), = av.items()
            cast = plan.casts[k]
            if cast == "iso" and tag == "S":
                v = v.replace("T", " ").removesuffix("Z")
            elif cast not in ("number", "string") or tag not in ("S", "N"):
                return None
            key[k] = {tag if cast != "iso" else "S": v}
        return key

    def change(self, c: Change) -> list[Change]:
        """A row change as target changes: put, delete, or delete-old + put-new when the key moved."""
        def mk(op, key, image):
            return Change(key=key, op=op, image=image, version=c.version, created_at=c.created_at, origin=c.origin)

        # only the before image's key matters: a bad value in another column must not block the change
        old = self._key(self._plan(c.old_image), c.old_image) if c.old_image is not None else None
        if c.op == "delete":
            if old is None:
                raise RecordError(f"delete of {c.key} has no before image (binlog_row_image must be FULL)")
            return [mk("delete", old, None)]
        new = self.item(c.image)
        out = []
        if old is not None and old != self.target_key_of(new):
            out.append(mk("delete", old, None))
        out.append(mk("put", self.target_key_of(new), new))
        return out

    def target_info(self) -> SourceInfo:
        """The target table's key schema and indexes (all key attributes are strings)."""
        ks = [{"AttributeName": self.key_names[0], "KeyType": "HASH"}]
        if len(self.key_names) > 1:
            ks.append({"AttributeName": self.key_names[1], "KeyType": "RANGE"})
        attrs = list(self.key_names)
        gsis = []
        for g in self.gsis:
            gks = [{"AttributeName": g.partition, "KeyType": "HASH"}]
            if g.sort:
                gks.append({"AttributeName": g.sort, "KeyType": "RANGE"})
            attrs += [a["AttributeName"] for a in gks]
            gsis.append({"IndexName": g.name, "KeySchema": gks, "Projection": {"ProjectionType": g.projection}})
        defs = [{"AttributeName": a, "AttributeType": "S"} for a in dict.fromkeys(attrs)]
        return SourceInfo(key_attributes=list(self.key_names), key_schema=ks, attribute_definitions=defs,
                          item_count=0, size_bytes=0, indexes={"gsi": gsis})
