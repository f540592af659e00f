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
from typing import Any, Iterator, Optional

import msgspec

from . import layout
from .chunks import fast_codec, gzip_lines, native_line, native_lines, plain_wire, std_line
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


class _Line(msgspec.Struct, omit_defaults=True):
    """:func:`encode`'s document with the images as they are, in its key order ("old" only when there is one):
    msgspec writes it straight from the change (see :mod:`turnout.chunks`)."""

    k: Any
    op: Any
    img: Any
    v: Any
    ts: Any
    cap: Any
    o: Any
    old: Any = None


def _native(c: Change, captured_at: float, plain: bool = False) -> Optional[_Line]:
    """The change as a :class:`_Line`, or None where a field is not of the plain kind that makes it the same JSON
    as :func:`encode` gives. ``plain``: the caller vouches that key and images are plain wire items (a change
    reader that builds nothing else says so with ``plain_images = True``), so they are not walked again."""
    if not ((plain or (plain_wire(c.key) and (c.image is None or plain_wire(c.image))
                       and (c.old_image is None or plain_wire(c.old_image))))
            and type(c.op) is str and type(c.origin) is str and type(c.version) is list
            and all(type(x) is int for x in c.version)
            and type(c.created_at) in (int, float) and math.isfinite(c.created_at)):
        return None
    return _Line(c.key, c.op, c.image, c.version, c.created_at, captured_at, c.origin, c.old_image)


def encode_file(changes: list[Change], captured_at: float, codec=DYNAMODB, *, plain: bool = False) -> bytes:
    """Change-log file content: gzipped JSON lines, each what ``json.dumps(encode(c))`` gives (msgspec writes the
    lines whose fields are all of the plain kind; see :mod:`turnout.chunks`)."""
    fast = fast_codec(codec) and type(captured_at) in (int, float) and math.isfinite(captured_at)
    docs = [_native(c, captured_at, plain) for c in changes] if fast else [None] * len(changes)
    if None not in docs:
        return gzip_lines(native_lines(docs))
    return gzip_lines(b"".join(native_line(d) + b"\n" if d is not None else std_line(encode(c, captured_at, codec))
                               + b"\n" for c, d in zip(changes, docs)))


def write_file(staging: Staging, n: int, changes: list[Change], captured_at: float, codec=DYNAMODB, *,
               plain: bool = False) -> bool:
    """Write change-log file ``n`` once: False (and nothing written) if it exists already."""
    return staging.put_new(file_key(n), encode_file(changes, captured_at, codec, plain=plain))


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
