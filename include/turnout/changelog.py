"""The durable change log in staging.

The capture appends immutable, numbered files (``changelog/000000000042.jsonl.gz``). File numbers
give a total order that keeps every key's changes in source order (a shard's records in sequence,
a parent shard before its children). A file is written at most once (a conditional create), so an
applier that consumed file N can trust it; a capture restarted after a crash, or the owner that finds a file
a fenced zombie wrote before it stopped, adopts it.
"""

from __future__ import annotations

import math
import re
from typing import Iterator, Optional

from . import layout
from .chunks import fast_codec, native_line, plain_wire, put_lines, std_line
from .codec import DYNAMODB
from .ports import Change
from .staging import Staging

PREFIX = layout.CHANGELOG
_NAME = re.compile(r"changelog/(\d{12})\.jsonl\.gz$")


def file_key(n: int) -> str:
    return f"{PREFIX}{n:012d}.jsonl.gz"


def encode(c: Change, captured_at: float, codec=DYNAMODB) -> dict:
    doc = {
        "k": codec.to_json(c.key),
        "op": c.op,
        "img": codec.to_json(c.image) if c.image is not None else None,
        "v": c.version,
        "ts": c.created_at,
        "cap": captured_at,
        "o": c.origin,
    }
    if c.old_image is not None:
        doc["old"] = codec.to_json(c.old_image)
    return doc


def decode(doc: dict, codec=DYNAMODB) -> Change:
    return Change(
        key=codec.from_json(doc["k"]),
        op=doc["op"],
        image=codec.from_json(doc["img"]) if doc.get("img") is not None else None,
        version=list(doc["v"]),
        created_at=float(doc["ts"]),
        origin=doc.get("o", ""),
        old_image=codec.from_json(doc["old"]) if doc.get("old") is not None else None,
    )


def _native(c: Change, captured_at: float) -> Optional[dict]:
    """:func:`encode`'s document with the images as they are (msgspec writes it; see :mod:`turnout.chunks`), or
    None where a field is not of the plain kind that makes it the same JSON."""
    if not (plain_wire(c.key) and (c.image is None or plain_wire(c.image))
            and (c.old_image is None or plain_wire(c.old_image)) and type(c.op) is str and type(c.origin) is str
            and type(c.version) is list and all(type(x) is int for x in c.version)
            and type(c.created_at) in (int, float) and math.isfinite(c.created_at)):
        return None
    doc = {"k": c.key, "op": c.op, "img": c.image, "v": c.version, "ts": c.created_at, "cap": captured_at,
           "o": c.origin}
    if c.old_image is not None:
        doc["old"] = c.old_image
    return doc


def write_file(staging: Staging, n: int, changes: list[Change], captured_at: float, codec=DYNAMODB) -> bool:
    """Write change-log file ``n`` once: False (and nothing written) if it exists already."""
    fast = fast_codec(codec) and type(captured_at) in (int, float) and math.isfinite(captured_at)
    lines = []
    for c in changes:
        doc = _native(c, captured_at) if fast else None
        lines.append(native_line(doc) if doc is not None else std_line(encode(c, captured_at, codec)))
    return put_lines(staging, file_key(n), lines, new=True) >= 0


def read_file(staging: Staging, n: int, codec=DYNAMODB) -> list[Change]:
    return [decode(d, codec) for d in staging.iter_jsonl_gz(file_key(n))]


def read_next(staging: Staging, start: int, limit: int, codec=DYNAMODB) -> list[tuple[int, list[Change]]]:
    """Files ``start``, ``start + 1``, ... as long as they exist (at most ``limit``), each with its changes. One
    read per file and one for the first missing: the cost does not grow with the length of the log (no listing)."""
    out: list[tuple[int, list[Change]]] = []
    for n in range(start, start + limit):
        data, _tag = staging.get_tagged(file_key(n))
        if data is None:
            break
        out.append((n, [decode(d, codec) for d in staging.parse_jsonl_gz(file_key(n), data)]))
    return out


def last_number(staging: Staging, below: int) -> int:
    """The last file number below ``below`` that exists, found by probing down (-1 if none)."""
    n = below - 1
    while n >= 0 and not staging.exists(file_key(n)):
        n -= 1
    return n


def file_numbers(staging: Staging, start: int = 0) -> list[int]:
    """Every file number from ``start``, by listing the prefix (a full listing: for tools and tests, not for
    anything that runs per poll)."""
    out = []
    for k in staging.list(PREFIX):
        m = _NAME.search(k)
        if m and int(m.group(1)) >= start:
            out.append(int(m.group(1)))
    return sorted(out)


def iter_changes(staging: Staging, start: int = 0, stop: int | None = None, codec=DYNAMODB
                 ) -> Iterator[tuple[int, Change]]:
    for n in file_numbers(staging, start):
        if stop is not None and n >= stop:
            return
        for c in read_file(staging, n, codec):
            yield n, c
