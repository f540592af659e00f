"""DynamoDB items as Cosmos DB documents: ids, partition keys, numbers, reserved names (pure)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ...codec import Item, canonical_number
from ...errors import RecordError
from ...ports import Change
from ...transform import TransformDefaults

SYSTEM_PROPERTIES = frozenset({"id", "_rid", "_self", "_etag", "_attachments", "_ts"})
FORBIDDEN_ID_CHARS = "/\\?#"
MAX_ID_CHARS = 255
_FIELD = re.compile(r"\{([^{}]+)\}")
MAX_SAFE_INT = 2**53 - 1


def exact_number(text: str, where: str, policy: str) -> Any:
    c = canonical_number(text, where)
    d = Decimal(c)
    if d == d.to_integral_value() and "." not in c:
        n = int(d)
        if -MAX_SAFE_INT <= n <= MAX_SAFE_INT:
            return n
    else:
        f = float(c)
        if canonical_number(repr(f)) == c:
            return f
    if policy == "string":
        return c
    raise RecordError(f"number {text} at {where} has no exact JSON (double) form; set target.number_policy: string "
                      "to keep it as text")


@dataclass(frozen=True)
class CosmosMapping(TransformDefaults):
    source_key: tuple[str, ...]  # DynamoDB key attributes, partition first
    key_types: tuple[str, ...]  # their types: S, N or B
    id_template: str
    partition_key_paths: tuple[str, ...]
    id_policy: str = "escape"  # or "reject"
    number_policy: str = "string"  # or "error"
    reserved_policy: str = "prefix"  # or "error"
    reserved_prefix: str = "ddb_"

    def source_key_from(self, item: dict) -> dict:
        """The key of a source item."""
        return {a: item[a] for a in self.source_key}

    @classmethod
    def from_spec(cls, target, source_key: list[str], key_types: list[str]) -> "CosmosMapping":
        template = target.id_template or "|".join("{%s}" % a for a in source_key)
        unknown = set(_FIELD.findall(template)) - set(source_key)
        if unknown:
            raise RecordError(f"target.id_template names {sorted(unknown)}, which are not key attributes {source_key}")
        if not set(source_key) <= set(_FIELD.findall(template)):
            raise RecordError(f"target.id_template {template!r} must use every key attribute {source_key}")
        pk0 = source_key[0]
        if pk0 in SYSTEM_PROPERTIES and target.reserved_attribute_policy == "prefix":
            pk0 = target.reserved_prefix + pk0
        paths = tuple(target.partition_key or ["/" + pk0])
        keyed = {"/" + (target.reserved_prefix + a if a in SYSTEM_PROPERTIES and
                        target.reserved_attribute_policy == "prefix" else a) for a in source_key}
        loose = [p for p in paths if p not in keyed]
        if loose:
            raise RecordError(
                f"target.partition_key {loose} is not a key attribute of the source ({sorted(keyed)}): an update that "
                "changes it would leave the old document behind in its old logical partition, and a delete could not "
                "name its partition; partition by key attributes only")
        return cls(tuple(source_key), tuple(key_types), template, paths, target.id_policy, target.number_policy,
                   target.reserved_attribute_policy, target.reserved_prefix)

    # ------------------------------------------------------------------ ids
    @property
    def _escape_set(self) -> str:
        literal = _FIELD.sub("", self.id_template)
        return "%" + FORBIDDEN_ID_CHARS + "".join(sorted(set(literal) - set("%" + FORBIDDEN_ID_CHARS)))

    def _key_text(self, av: dict, attr: str) -> str:
        (tag, v), = av.items()
        if tag == "S":
            return v
        if tag == "N":
            return canonical_number(v, attr)
        if tag == "B":
            return base64.b64encode(v).decode() if isinstance(v, (bytes, bytearray)) else v
        raise RecordError(f"key attribute {attr!r} has type {tag}; keys are S, N or B")

    def make_id(self, key: Item) -> str:
        esc = self._escape_set
        parts = {}
        for a in self.source_key:
            if a not in key:
                raise RecordError(f"item lacks key attribute {a!r}", key=key)
            text = self._key_text(key[a], a)
            if self.id_policy == "reject":
                bad = sorted({ch for ch in text if ch in esc})
                if bad:
                    raise RecordError(f"key attribute {a!r} value {text!r} contains {bad}, which a Cosmos id cannot "
                                      "hold unambiguously; set target.id_policy: escape", key=key)
                parts[a] = text
            else:
                parts[a] = "".join("%%%02X" % ord(ch) if ch in esc else ch for ch in text)
        out = _FIELD.sub(lambda m: parts[m.group(1)], self.id_template)
        if len(out) > MAX_ID_CHARS:
            raise RecordError(f"the Cosmos id would be {len(out)} characters, over the limit of {MAX_ID_CHARS}", key=key)
        return out

    def parse_id(self, doc_id: str) -> dict[str, str]:
        """Inverse of make_id (escape policy): key attribute -> its text."""
        names = _FIELD.findall(self.id_template)
        literals = _FIELD.split(self.id_template)[::2]
        pattern = "^" + "".join(re.escape(lit) + ("([^%s]*)" % re.escape(self._escape_set[1:]) if i < len(names)
                                                  else "") for i, lit in enumerate(literals)) + "$"
        m = re.match(pattern, doc_id)
        if not m:
            raise RecordError(f"id {doc_id!r} does not follow the template {self.id_template!r}")
        unq = lambda t: re.sub(r"%([0-9A-F]{2})", lambda x: chr(int(x.group(1), 16)), t)  # noqa: E731
        return {n: unq(v) for n, v in zip(names, m.groups())}

    # ------------------------------------------------------------------ values
    def value(self, av: dict, where: str) -> Any:
        if not isinstance(av, dict) or len(av) != 1:
            raise RecordError(f"malformed attribute value at {where}")
        (tag, v), = av.items()
        if tag == "S":
            return v
        if tag == "N":
            return exact_number(v, where, self.number_policy)
        if tag == "B":
            return base64.b64encode(v).decode()
        if tag == "BOOL":
            return bool(v)
        if tag == "NULL":
            return None
        if tag == "SS":
            return sorted(v)
        if tag == "NS":
            return [exact_number(x, where, self.number_policy) for x in sorted(v, key=Decimal)]
        if tag == "BS":
            return sorted(base64.b64encode(x).decode() for x in v)
        if tag == "M":
            return {k: self.value(x, f"{where}.{k}") for k, x in v.items()}
        if tag == "L":
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        raise RecordError(f"unknown DynamoDB type {tag!r} at {where}")

    def attr_name(self, name: str) -> str:
        if name in SYSTEM_PROPERTIES:
            if self.reserved_policy == "error":
                raise RecordError(f"attribute {name!r} collides with a Cosmos DB system property; set "
                                  "target.reserved_attribute_policy: prefix")
            return self.reserved_prefix + name
        return name

    # ------------------------------------------------------------------ the Transform interface
    @property
    def target_key(self) -> tuple[str, ...]:
        return ("id", "pk")

    def item(self, item: Item) -> dict:
        doc: dict[str, Any] = {"id": self.make_id(item)}
        came = {"id": "(the document id Turnout makes)"}
        for k, v in item.items():
            name = self.attr_name(k)
            if name in doc:  # e.g. "id" prefixed to "ddb_id" on an item that has a "ddb_id": refuse, never overwrite
                raise RecordError(f"attributes {came[name]!r} and {k!r} both become {name!r} in the Cosmos DB "
                                  "document (target.reserved_prefix); choose another target.reserved_prefix",
                                  key={a: item.get(a) for a in self.source_key})
            doc[name], came[name] = self.value(v, k), k
        for p in self.partition_key_paths:
            if self._at(doc, p) is _MISSING:
                raise RecordError(f"document lacks its partition key {p}", key={a: item.get(a) for a in self.source_key})
        return doc

    def key(self, source_key: Item) -> dict:
        doc_key = {self.attr_name(k): self.value(v, k) for k, v in source_key.items()}
        return {"id": self.make_id(source_key), "pk": [self._at(doc_key, p) for p in self.partition_key_paths]}

    def target_key_of(self, doc: dict) -> dict:
        return {"id": doc["id"], "pk": [self._at(doc, p) for p in self.partition_key_paths]}

    def source_key_of(self, doc: dict) -> Item:
        texts = self.parse_id(doc["id"])
        out = {}
        for a, t in zip(self.source_key, self.key_types):
            out[a] = {"B": base64.b64decode(texts[a])} if t == "B" else {t: texts[a]}
        return out

    def change(self, c: Change) -> list[Change]:
        if c.op == "delete":
            return [Change(key=self.key(c.key), op="delete", image=None, version=c.version, created_at=c.created_at,
                           origin=c.origin)]
        doc = self.item(c.put_image)
        return [Change(key=self.target_key_of(doc), op="put", image=doc, version=c.version, created_at=c.created_at,
                       origin=c.origin)]

    @staticmethod
    def _at(doc: dict, path: str):
        node: Any = doc
        for part in path.strip("/").split("/"):
            if not isinstance(node, dict) or part not in node:
                return _MISSING
            node = node[part]
        return node


class _Missing:
    def __repr__(self):
        return "<missing>"


_MISSING = _Missing()


def doc_size(doc: dict) -> int:
    return len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())
