"""DynamoDB-JSON ("wire") items: JSON-safe encoding, canonical form, hashing, size.

Items travel through Turnout in DynamoDB's own wire format (``{"pk": {"S": "a"}}``) so numbers keep
all 38 digits (they stay strings) and nothing is lost to Python floats. Binary values are bytes in
memory and base64 text in staging files, the layout DynamoDB's own export uses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import RecordError

Item = dict[str, Any]  # a record: a DynamoDB item (attribute -> typed value) or a document

_TYPES = {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}
# numbers already in normal form (no exponent, no leading or trailing zeros, at most 60 characters so no rounding):
# valid and canonical as they are, without a trip through Decimal (the common case, per attribute of every change)
_PLAIN_NUMBER = re.compile(r"-?(?:[1-9][0-9]*|[1-9][0-9]*\.[0-9]*[1-9]|0\.[0-9]*[1-9])")
_DECIMAL_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # valid and finite (not necessarily in normal form)


def _check_av(av: Any, where: str) -> None:
    if not isinstance(av, dict) or len(av) != 1:
        raise RecordError(f"malformed attribute value at {where}: expected one type tag, got {av!r:.80}")
    (tag,) = av
    if tag not in _TYPES:
        raise RecordError(f"malformed attribute value at {where}: unknown type tag {tag!r}")


def to_json_av(av: dict, where: str = "item") -> dict:
    """Wire attribute value (bytes for B) -> JSON-safe value (base64 text for B)."""
    _check_av(av, where)
    (tag, v), = av.items()
    if tag == "B":
        return {"B": base64.b64encode(v).decode("ascii") if isinstance(v, (bytes, bytearray)) else v}
    if tag == "BS":
        return {"BS": [base64.b64encode(b).decode("ascii") if isinstance(b, (bytes, bytearray)) else b for b in v]}
    if tag == "M":
        return {"M": {k: to_json_av(x, f"{where}.{k}") for k, x in v.items()}}
    if tag == "L":
        return {"L": [to_json_av(x, f"{where}[{i}]") for i, x in enumerate(v)]}
    return {tag: v}


def from_json_av(av: dict, where: str = "item") -> dict:
    """JSON-safe value -> wire attribute value (bytes for B)."""
    if av.__class__ is dict and len(av) == 1:  # fast path for the common tags; anything else takes the full one
        (tag, v), = av.items()
        if tag == "S" or tag == "BOOL" or tag == "NULL":
            return {tag: v}
        if tag == "N" and v.__class__ is str and len(v) <= 60 and _DECIMAL_NUMBER.fullmatch(v):
            return {"N": v}
        if tag == "M" and v.__class__ is dict:
            return {"M": {k: from_json_av(x, f"{where}.{k}") for k, x in v.items()}}
    return _from_json_av(av, where)


def _from_json_av(av: dict, where: str) -> dict:
    _check_av(av, where)
    (tag, v), = av.items()
    try:
        if tag == "B":
            return {"B": base64.b64decode(v, validate=True)}
        if tag == "BS":
            return {"BS": [base64.b64decode(b, validate=True) for b in v]}
    except (ValueError, TypeError) as exc:
        raise RecordError(f"malformed binary value at {where}: {exc}") from exc
    if tag == "M":
        return {"M": {k: from_json_av(x, f"{where}.{k}") for k, x in v.items()}}
    if tag == "L":
        return {"L": [from_json_av(x, f"{where}[{i}]") for i, x in enumerate(v)]}
    if tag == "N":
        canonical_number(v, where)  # reject malformed numbers early, naming where
    return {tag: v}


def item_to_json(item: Item) -> dict:
    return {k: to_json_av(v, k) for k, v in item.items()}


def item_from_json(doc: dict) -> Item:
    """An item read from staging as a wire item. Where every value is its own wire form (the common case) the
    document itself is returned, not a copy (as JsonDocCodec does); else a converted copy."""
    if not isinstance(doc, dict):
        raise RecordError(f"malformed item: expected an object, got {type(doc).__name__}")
    match = _DECIMAL_NUMBER.fullmatch
    for v in doc.values():  # a value is its own wire form: text, a plain number, a flag, null
        if v.__class__ is dict and len(v) == 1:
            if "S" in v or "BOOL" in v or "NULL" in v:
                continue
            n = v.get("N")
            if n.__class__ is str and len(n) <= 60 and match(n) is not None:
                continue
        return {k: from_json_av(v, k) for k, v in doc.items()}
    return doc


def canonical_number(text: str, where: str = "number") -> str:
    """DynamoDB's number normal form: no exponent games, no trailing zeros, exact."""
    if text.__class__ is str and len(text) <= 60 and (text == "0" or _PLAIN_NUMBER.fullmatch(text)):
        return text
    try:
        d = Decimal(text)
    except (InvalidOperation, TypeError) as exc:
        raise RecordError(f"malformed number {text!r} at {where}") from exc
    if not d.is_finite():
        raise RecordError(f"number {text!r} at {where} is not finite")
    if d == 0:
        return "0"
    d = d.normalize(context=_CTX)
    sign, digits, exp_ = d.as_tuple()
    exp = int(exp_)  # finite: checked above
    s = "".join(map(str, digits))
    if exp >= 0:
        s = s + "0" * exp
    else:
        point = len(s) + exp
        s = ("0." + "0" * (-point) + s) if point <= 0 else (s[:point] + "." + s[point:])
    return ("-" if sign else "") + s


from decimal import Context  # noqa: E402

_CTX = Context(prec=60)


def _canon(av: dict) -> Any:
    (tag, v), = av.items()
    if tag == "S":
        return ["S", v]
    if tag == "N":
        return ["N", canonical_number(v)]
    if tag == "NS":
        return ["NS", sorted(canonical_number(x) for x in v)]
    if tag == "SS":
        return ["SS", sorted(v)]
    if tag == "B":
        return ["B", base64.b64encode(v).decode() if isinstance(v, (bytes, bytearray)) else v]
    if tag == "BS":
        return ["BS", sorted(base64.b64encode(x).decode() if isinstance(x, (bytes, bytearray)) else x for x in v)]
    if tag == "M":
        return ["M", {k: _canon(x) for k, x in sorted(v.items())}]
    if tag == "L":
        return ["L", [_canon(x) for x in v]]
    return [tag, v]


def canonical(item: Item) -> str:
    """A canonical text of an item: equal items (sets in any order, 1.50 vs 1.5) give equal text."""
    return json.dumps({k: _canon(v) for k, v in sorted(item.items())}, separators=(",", ":"), ensure_ascii=False)


def item_hash(item: Item) -> bytes:
    return hashlib.blake2b(canonical(item).encode(), digest_size=16).digest()


def key_text(key: Item) -> str:
    """Stable text of a key (the same on every worker; never Python's seeded hash())."""
    return canonical(key)


def stable_bucket(text: str, buckets: int) -> int:
    h = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") % buckets


def _text_size(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode())


def _av_size(av: dict) -> int:
    (tag, v), = av.items()
    if tag == "S":
        return _text_size(v)
    if tag == "N":
        return len(v) // 2 + 2
    if tag == "B":
        return len(v)
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "SS":
        return sum(_text_size(x) for x in v)
    if tag == "NS":
        return sum(len(x) // 2 + 2 for x in v)
    if tag == "BS":
        return sum(len(x) for x in v)
    if tag == "M":
        return 3 + sum(_text_size(k) + 1 + _av_size(x) for k, x in v.items())
    if tag == "L":
        return 3 + sum(1 + _av_size(x) for x in v)
    return 0


def item_size(item: Item) -> int:
    """DynamoDB's item size rule (attribute names + values), close enough to enforce the 400 KB limit."""
    return sum(_text_size(k) + _av_size(v) for k, v in item.items())


# ---------------------------------------------------------------- record codecs
# A codec tells the engine how one side's records look: JSON-safe form for staging files, and the
# canonical text that hashing and key comparison use. Sources and sinks each name theirs.


class DynamoDBCodec:
    """DynamoDB wire items (``{"a": {"S": "x"}}``): numbers as exact strings, binaries as bytes."""

    name = "dynamodb"

    def to_json(self, rec: Item) -> dict:
        return item_to_json(rec)

    def from_json(self, doc: dict) -> Item:
        return item_from_json(doc)

    def canonical(self, rec: Item) -> str:
        return canonical(rec)

    def hash(self, rec: Item) -> bytes:
        return item_hash(rec)

    def key_text(self, key: Item) -> str:
        return canonical(key)


class JsonDocCodec:
    """Plain JSON documents (Cosmos DB for NoSQL): canonical text with sorted keys."""

    name = "json"

    def to_json(self, rec: dict) -> dict:
        return rec

    def from_json(self, doc: dict) -> dict:
        return doc

    def canonical(self, rec: dict) -> str:
        return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def hash(self, rec: dict) -> bytes:
        return hashlib.blake2b(self.canonical(rec).encode(), digest_size=16).digest()

    def key_text(self, key: dict) -> str:
        return self.canonical(key)


DYNAMODB = DynamoDBCodec()
JSON_DOC = JsonDocCodec()
