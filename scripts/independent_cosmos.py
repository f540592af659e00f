"""An independent DynamoDB -> Cosmos DB for NoSQL expectation, written by hand from the documented mapping rules
(README, "For Cosmos DB the target declares the document mapping", and the docstring of the engine's Cosmos
mapping). It imports nothing from ``turnout``: a mapping bug in the engine cannot hide on both sides of a
comparison that uses it.

The rules, as documented:

- ``id`` comes from ``id_template`` (``{pk}|{sk}``) over the key attributes' texts. In a key text the characters
  Cosmos forbids in ids (``/ \\ ? #``), the escape character ``%`` itself and every literal character of the
  template (its separators) are percent-escaped (``%`` + two upper-case hex digits); an id over 255 characters is
  rejected.
- The partition key path(s) of the container (``partition_key``, default ``/<partition key attribute>``) must be
  present in the document.
- S -> string; N -> a JSON number only where it is exact (an integer within +-(2**53 - 1), or a decimal a double
  reproduces digit for digit), else, with ``number_policy: string``, its exact text (no exponent, no trailing
  zeros); B -> base64; BOOL -> true/false; NULL -> null; SS/NS/BS -> arrays in sorted order (NS by value, BS as its
  base64 texts); M -> object; L -> array, recursively.
- Top-level attributes named like a Cosmos system property (``id``, ``_rid``, ``_self``, ``_etag``,
  ``_attachments``, ``_ts``) get the declared prefix (``ddb_``).
"""

from __future__ import annotations

import base64
import decimal
import json
import re
from typing import Any

SYSTEM_PROPERTIES = ("id", "_rid", "_self", "_etag", "_attachments", "_ts")
ALWAYS_ESCAPED = "%/\\?#"
MAX_ID = 255
LARGEST_EXACT_INT = 2**53 - 1
_EXACT = decimal.Context(prec=200)  # wide enough for any DynamoDB number (38 digits, exponent -130..+125)


class Unmappable(ValueError):
    """The documented rules reject this item (id too long, number without an exact form under policy error...)."""


def _number_text(d: decimal.Decimal) -> str:
    """A number's exact text: no exponent, no trailing zeros, "-" only for a non-zero negative."""
    if d.is_zero():
        return "0"
    return format(d.normalize(_EXACT), "f")


def number(text: str, policy: str = "string") -> Any:
    d = decimal.Decimal(text)
    if d == d.to_integral_value(context=_EXACT):
        n = int(d)
        if abs(n) <= LARGEST_EXACT_INT:
            return n
    else:
        f = float(d)
        if decimal.Decimal(repr(f)) == d:  # the shortest text of the double has exactly these digits
            return f
    if policy == "string":
        return _number_text(d)
    raise Unmappable(f"number {text} has no exact double")


def _b64(b: bytes) -> str:
    return base64.b64encode(bytes(b)).decode("ascii")


def value(av: dict, policy: str = "string") -> Any:
    [(tag, v)] = av.items()
    if tag == "S":
        return v
    if tag == "N":
        return number(v, policy)
    if tag == "B":
        return _b64(v)
    if tag == "BOOL":
        return bool(v)
    if tag == "NULL":
        return None
    if tag == "SS":
        return sorted(v)
    if tag == "NS":
        return [number(x, policy) for x in sorted(v, key=decimal.Decimal)]
    if tag == "BS":
        return sorted(_b64(x) for x in v)
    if tag == "M":
        return {k: value(x, policy) for k, x in v.items()}
    if tag == "L":
        return [value(x, policy) for x in v]
    raise Unmappable(f"unknown type {tag}")


def _key_text(av: dict) -> str:
    [(tag, v)] = av.items()
    if tag == "S":
        return v
    if tag == "N":
        return _number_text(decimal.Decimal(v))
    if tag == "B":
        return _b64(v)
    raise Unmappable(f"a key attribute of type {tag}")


def make_id(item: dict, id_template: str) -> str:
    fields = re.findall(r"\{([^{}]+)\}", id_template)
    separators = set(re.sub(r"\{[^{}]+\}", "", id_template))
    escape = set(ALWAYS_ESCAPED) | separators
    out = id_template
    for f in fields:
        text = "".join("%" + format(ord(ch), "02X") if ch in escape else ch for ch in _key_text(item[f]))
        out = out.replace("{" + f + "}", text, 1)
    if len(out) > MAX_ID:
        raise Unmappable(f"id of {len(out)} characters")
    return out


def expected_document(item: dict, *, id_template: str = "{pk}|{sk}", partition_key: tuple[str, ...] = ("/pk",),
                      number_policy: str = "string", reserved_prefix: str = "ddb_") -> dict:
    """The Cosmos document a DynamoDB item (boto3 low-level form, bytes for B) must become."""
    doc: dict[str, Any] = {"id": make_id(item, id_template)}
    for name, av in item.items():
        doc[reserved_prefix + name if name in SYSTEM_PROPERTIES else name] = value(av, number_policy)
    for path in partition_key:
        partition_value(doc, path)  # raises when the document lacks it
    return doc


def partition_value(doc: dict, path: str) -> Any:
    node: Any = doc
    for part in path.strip("/").split("/"):
        if not isinstance(node, dict) or part not in node:
            raise Unmappable(f"document {doc.get('id')!r} lacks its partition key {path}")
        node = node[part]
    return node


# ---------------------------------------------------------------------------------- a sample

# Items the workload never makes: every id escape, reserved names, numbers on both sides of exactness, sets out of
# order, nested reserved-looking names (left alone: only top-level names collide with system properties).
TRICKY = {"pk": {"S": "a/b\\c?d#e%f|g"}, "sk": {"S": "x|y/z"}, "kind": {"S": "order"},
          "id": {"S": "user-id"}, "_ts": {"N": "5"}, "_etag": {"S": "e"},
          "max_int": {"N": "9007199254740991"}, "min_int": {"N": "-9007199254740991"},
          "past_max": {"N": "9007199254740993"},
          "tenth": {"N": "0.1"}, "pi": {"N": "3.141592653589793238462643383279"},
          "tiny": {"N": "1.5E-100"}, "big_round": {"N": "1E+30"},
          "ns": {"NS": ["10", "-2", "3.25", "9007199254740993"]}, "ss": {"SS": ["b", "a", "Z", "\u00c4"]},
          "bs": {"BS": [b"\xff", b"\x00", b"\x10"]}, "blob": {"B": b"\x00\xfb\xff"},
          "m": {"M": {"id": {"S": "nested"}, "l": {"L": [{"N": "1.50"}, {"B": b"\x01"}, {"M": {}}, {"L": []},
                                                          {"BOOL": False}, {"NULL": True}]}}}}
# ...and what Cosmos must hold for it, written out by hand from the documented rules
TRICKY_DOC = {"id": "a%2Fb%5Cc%3Fd%23e%25f%7Cg|x%7Cy%2Fz", "pk": "a/b\\c?d#e%f|g", "sk": "x|y/z", "kind": "order",
              "ddb_id": "user-id", "ddb__ts": 5, "ddb__etag": "e", "max_int": 9007199254740991,
              "min_int": -9007199254740991, "past_max": "9007199254740993", "tenth": 0.1,
              "pi": "3.141592653589793238462643383279", "tiny": 1.5e-100,
              "big_round": "1000000000000000000000000000000", "ns": [-2, 3.25, 10, "9007199254740993"],
              "ss": ["Z", "a", "b", "\u00c4"], "bs": ["/w==", "AA==", "EA=="], "blob": "APv/",
              "m": {"id": "nested", "l": [1.5, "AQ==", {}, [], False, None]}}


# ---------------------------------------------------------------------------------- reading both sides directly


def scan_source(endpoint: str, table: str) -> list[dict]:
    """Every item of a DynamoDB table (boto3, strongly consistent), no turnout code involved."""
    import boto3

    c = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
                     aws_secret_access_key="local")
    out: list[dict] = []
    for page in c.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        out.extend(page["Items"])
    return out


def container(cosmos_endpoint: str, key: str, database: str, name: str):
    from azure.cosmos import CosmosClient

    return CosmosClient(cosmos_endpoint, credential=key, enable_endpoint_discovery=False) \
        .get_database_client(database).get_container_client(name)


def _strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in SYSTEM_PROPERTIES[1:]}


def full_compare(src_endpoint: str, table: str, cosmos_endpoint: str, cosmos_key: str, database: str, name: str, *,
                 id_template: str = "{pk}|{sk}", partition_key: tuple[str, ...] = ("/pk",),
                 number_policy: str = "string", reserved_prefix: str = "ddb_", point_reads: int = 25) -> dict:
    """Every source item, mapped by the documented rules, against every document in the container (system
    properties stripped), and the container's partition key paths against the declared ones. A sample of
    ``point_reads`` documents is also read by (id, partition key value): each lives in the partition the rules
    put it in."""
    want, unmappable = {}, []
    for it in scan_source(src_endpoint, table):
        try:
            d = expected_document(it, id_template=id_template, partition_key=partition_key,
                                  number_policy=number_policy, reserved_prefix=reserved_prefix)
        except Unmappable as exc:
            unmappable.append(str(exc))
            continue
        want[d["id"]] = d
    cont = container(cosmos_endpoint, cosmos_key, database, name)
    have = {d["id"]: _strip(d) for d in cont.query_items("SELECT * FROM c", enable_cross_partition_query=True)}
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    different = sorted(k for k in set(want) & set(have)
                       if json.dumps(want[k], sort_keys=True) != json.dumps(have[k], sort_keys=True))
    paths = cont.read()["partitionKey"]["paths"]
    misplaced = []
    for doc_id in sorted(set(want) & set(have))[:point_reads]:
        pk = [partition_value(want[doc_id], p) for p in partition_key]
        got = cont.read_item(doc_id, partition_key=pk[0] if len(pk) == 1 else pk)
        if _strip(got) != want[doc_id]:
            misplaced.append(doc_id)
    return {"source": len(want) + len(unmappable), "target": len(have), "unmappable": unmappable,
            "missing": missing[:20], "extra": extra[:20], "different": different[:20],
            "differences": len(missing) + len(extra) + len(different) + len(unmappable) + len(misplaced),
            "partition_key_paths": paths, "misplaced": misplaced,
            "example": ({"want": want[different[0]], "have": have[different[0]]} if different else None)}
