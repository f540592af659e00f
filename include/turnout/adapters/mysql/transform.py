"""The MySQL route's transform: rows of several tables into single-table items (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from ...codec import Item
from ...errors import RecordError
from ...ports import Change, SourceInfo
from ...spec import template_fields

# ------------------------------------------------------------------------------ the transform
from ...transform import TransformDefaults
from .values import TABLE_ATTR, TableSchema, _fail, _Template, cast_value, check_number, source_key


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
    key_columns: tuple[str, ...] = ()  # the columns the key templates use

    def __post_init__(self) -> None:
        self.key_columns = tuple(dict.fromkeys(f for t in (self.pk, self.sk) if t is not None for f, _ in t.fields))


def _cast(col, cast: str, av: dict) -> Optional[dict]:
    """cast_value, its two most common cases (text as text, a number as a number) inline."""
    if len(av) == 1:
        if cast == "string" and "S" in av:
            return {"S": av["S"]}
        if cast == "number" and "N" in av:
            return {"N": check_number(av["N"])}
    return cast_value(col, cast, av)


def _skeleton(template: Optional[str]) -> str:
    """A key template with its columns blanked: two tables with one skeleton render keys from one space."""
    return re.sub(r"\{[^{}]*\}", "{}", (template or "").replace("{{", "\0").replace("}}", "\1"))


def _refuse_shared_skeletons(tables: dict) -> None:
    """Two tables whose key templates differ only in their columns can give two rows one key (the last write
    wins, across tables): refused, naming both. Templates that differ in their literal text cannot collide this
    way; others that still do are caught by validation (two source records on one target key)."""
    seen: dict[tuple[str, str], str] = {}
    for name, tm in tables.items():
        sk = (_skeleton(tm.partition_key), _skeleton(tm.sort_key))
        if sk in seen:
            raise RecordError(
                f"mapping.tables.{seen[sk]} and mapping.tables.{name} have key templates of one shape "
                f"({tm.partition_key!r} / {tm.sort_key!r}): a row of each can render the same key and one would "
                f"overwrite the other; give each table its own literal prefix, e.g. '{name.upper()}#...'")
        seen[sk] = name


@dataclass
class RelationalTransform(TransformDefaults):
    grouped = True
    tables: dict[str, _TablePlan]
    key_names: tuple[str, ...]  # (partition,) or (partition, sort)
    nulls: str = "omit"
    type_attribute: Optional[str] = None
    gsis: list = field(default_factory=list)
    source_key: tuple[str, ...] = (TABLE_ATTR,)  # the leading source key attribute (per-table PKs follow)

    @classmethod
    def from_spec(cls, spec, schemas: dict[str, TableSchema], escape: bool = True) -> "RelationalTransform":
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
            for what, tpl in (("partition_key", tm.partition_key), ("sort_key", tm.sort_key)):
                if tpl and re.search(r"\}\{(?!\{)", tpl.replace("{{", "").replace("}}", "")):
                    raise RecordError(f"{where}.{what}: {tpl!r} puts two columns side by side: values could run "
                                      "into each other (('ab','c') and ('a','bc') render alike); put a separator "
                                      "between them, e.g. {a}#{b}")
            in_key = {f for tpl in (tm.partition_key, tm.sort_key) if tpl for f, _ in template_fields(tpl)}
            unkeyed = [c for c in schema.primary_key if c not in in_key]
            if unkeyed:
                raise RecordError(
                    f"{where}: the key templates do not use primary key column(s) {unkeyed} of table {name!r}: two "
                    f"rows that differ only there would become one item (the last write wins); add "
                    f"{' '.join('{' + c + '}' for c in unkeyed)} to partition_key or sort_key")
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
                schema=schema, pk=_Template(tm.partition_key, escape),
                sk=_Template(tm.sort_key, escape) if tm.sort_key else None,
                entity=tm.entity or name, rename=dict(tm.rename), drop=frozenset(tm.drop), casts=casts,
                computed={a: _Template(x) for a, x in tm.computed.items()})
        entities = [p.entity for p in plans.values()]
        if m.type_attribute and len(set(entities)) != len(entities):
            raise RecordError("mapping.tables: two tables share an entity name")
        _refuse_shared_skeletons(m.tables)
        return cls(plans, key_names, m.nulls, m.type_attribute, list(t.gsis))

    # -- the engine's transform interface

    @property
    def target_key(self) -> tuple[str, ...]:
        return self.key_names

    def _plan(self, item: Item) -> _TablePlan:
        t = item.get(TABLE_ATTR, {}).get("S")
        plan = self.tables.get(t) if isinstance(t, str) else None
        if plan is None:
            raise RecordError(f"row of table {t!r}, which the mapping does not migrate")
        return plan

    def key(self, source_key: Item) -> Item:
        """The target key of a row's primary key, where the key templates use primary-key columns only (else the
        row itself is needed: RecordError)."""
        plan = self._plan(source_key)
        used = {f for t in (plan.pk, plan.sk) if t is not None for f, _ in t.fields}
        if not used <= set(plan.schema.primary_key):
            raise RecordError(f"table {plan.schema.name!r}: the key templates use columns outside the primary key "
                              f"({sorted(used - set(plan.schema.primary_key))}), so a row that is gone cannot be "
                              "told its target key; delete it on the target by hand")
        return self._key(plan, source_key)

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
                v = _cast(col, plan.casts[name], av)
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

        # only the before image's key matters: a bad value in another column must not block the change. Where the
        # key columns did not change (most updates), the before image renders the key the new image renders
        oi = c.old_image
        same = oi is not None and c.op == "put" and self._same_key_columns(oi, c.put_image)
        old = self._key(self._plan(oi), oi) if oi is not None and not same else None
        if c.op == "delete":
            if old is None:
                raise RecordError(f"delete of {c.key} has no before image (binlog_row_image must be FULL)")
            return [mk("delete", old, None)]
        new = self.item(c.put_image)
        out = []
        if old is not None and old != self.target_key_of(new):
            out.append(mk("delete", old, None))
        out.append(mk("put", self.target_key_of(new), new))
        return out

    def _same_key_columns(self, old: Item, new: Item) -> bool:
        t = old.get(TABLE_ATTR)
        name = t.get("S") if isinstance(t, dict) and t == new.get(TABLE_ATTR) else None
        plan = self.tables.get(name) if isinstance(name, str) else None
        return plan is not None and all(old.get(k) == new.get(k) for k in plan.key_columns)

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
