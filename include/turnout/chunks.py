"""Export chunks as gzip JSON lines (the form every route but the Mongo dump uses), and the JSON-lines encoding
the change log shares.

Lines are what ``json.dumps(codec.to_json(record), separators=(",", ":"), ensure_ascii=False)`` gives (read back
by :meth:`turnout.staging.Staging.parse_jsonl_gz`). A DynamoDB wire item whose attributes are all plain scalars
(S/N text, B bytes, NULL/BOOL) is written by msgspec straight from the item, bytes as the same base64: the same
JSON at a fraction of the cost. Anything else takes the codec's ``to_json`` and the standard library, unchanged.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any, Optional

import msgspec

from .codec import DynamoDBCodec, Item
from .errors import RecordError
from .ports import Codec
from .staging import Staging

GZIP_LEVEL = 3  # as Staging.put_jsonl_gz
_ENC = msgspec.json.Encoder()
_SCALAR = {"S": str, "N": str, "B": bytes, "NULL": bool, "BOOL": bool}


def plain_wire(item: Item) -> bool:
    """Every attribute one type tag of :data:`_SCALAR` holding exactly that Python type."""
    if type(item) is not dict:
        return False
    for av in item.values():
        if type(av) is not dict or len(av) != 1:
            return False
        for tag, v in av.items():
            if _SCALAR.get(tag) is not type(v):
                return False
    return True


def fast_codec(codec: Any) -> bool:
    return type(codec) is DynamoDBCodec


def native_line(doc: Any) -> bytes:
    """A document of JSON types, bytes (as base64 text) and plain wire items, as one compact JSON line."""
    return _ENC.encode(doc)


def native_lines(docs: list) -> bytes:
    """:func:`native_line` of each document, each followed by a newline, in one call."""
    return _ENC.encode_lines(docs)


def gzip_lines(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=GZIP_LEVEL)


def std_line(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def put_lines(staging: Staging, key: str, lines: list[bytes], *, new: bool = False) -> int:
    """Gzipped JSON lines, as ``Staging.put_jsonl_gz`` writes them: the size, or -1 if ``new`` and it exists."""
    data = gzip_lines(b"".join(line + b"\n" for line in lines))
    if new:
        return len(data) if staging.put_new(key, data) else -1
    staging.put_bytes(key, data)
    return len(data)


class JsonlChunks:
    """:class:`turnout.ports.ChunkFormat` of one record per line, each in the source codec's JSON form.

    ``plain``: every record the source exports is a plain wire item by construction (the MySQL row converters give
    nothing else, as for its change reader's ``plain_images``), so the lines are encoded in one call, unchecked."""

    def __init__(self, codec: Codec, plain: bool = False):
        self.codec = codec
        self.plain = plain and fast_codec(codec)

    def write(self, staging: Staging, prefix: str, records: list[Any], unit: dict) -> tuple[str, int]:
        name = f"{prefix}.jsonl.gz"
        if self.plain:
            data = gzip_lines(native_lines(records))
            staging.put_bytes(name, data)
            return name, len(data)
        fast, to_json = fast_codec(self.codec), self.codec.to_json
        return name, put_lines(staging, name, [native_line(r) if fast and plain_wire(r) else std_line(to_json(r))
                                               for r in records])

    def read(self, staging: Staging, key: str) -> Iterator[tuple[Any, Optional[str]]]:
        for n, doc in enumerate(staging.iter_jsonl_gz(key), 1):
            try:
                yield self.codec.from_json(doc), None
            except RecordError as exc:
                yield doc, f"{key} line {n}: {exc}"
