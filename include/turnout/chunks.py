"""Export chunks as gzip JSON lines (the form every route but the Mongo dump uses)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

from .errors import RecordError
from .ports import Codec
from .staging import Staging


class JsonlChunks:
    """:class:`turnout.ports.ChunkFormat` of one record per line, each in the source codec's JSON form."""

    def __init__(self, codec: Codec):
        self.codec = codec

    def write(self, staging: Staging, prefix: str, records: list[Any], unit: dict) -> tuple[str, int]:
        name = f"{prefix}.jsonl.gz"
        return name, staging.put_jsonl_gz(name, [self.codec.to_json(r) for r in records])

    def read(self, staging: Staging, key: str) -> Iterator[tuple[Any, Optional[str]]]:
        for n, doc in enumerate(staging.iter_jsonl_gz(key), 1):
            try:
                yield self.codec.from_json(doc), None
            except RecordError as exc:
                yield doc, f"{key} line {n}: {exc}"
