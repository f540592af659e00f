"""Export chunks in mongodump's layout (``<db>/<collection>.bson`` + ``.metadata.json``), and the source's
index metadata recorded by preflight."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

from ... import layout
from ...errors import RecordError
from ...staging import Staging
from .codec import (
    decode_all,
    dump_paths,
    encode,
    metadata_json,
    ns_of_dump_path,
    read_metadata,
)


def index_metadata(staging: Staging) -> dict[str, dict]:
    """{ns: {"indexes": [...], "options": {...}}} as preflight recorded it (canonical Extended JSON)."""
    if not staging.exists(layout.SOURCE_METADATA):
        return {}
    return read_metadata(staging.get_bytes(layout.SOURCE_METADATA).decode(), layout.SOURCE_METADATA)


def index_definitions(staging: Staging) -> dict[str, list[dict]]:
    return {ns: m["indexes"] for ns, m in index_metadata(staging).items()}


class BsonDumpChunks:
    """:class:`turnout.ports.ChunkFormat`: one mongodump directory per chunk, which mongorestore could read."""

    def write(self, staging: Staging, prefix: str, records: list[Any], unit: dict) -> tuple[str, int]:
        ns = records[0]["ns"] if records else unit["ns"]
        data_key, meta_key = dump_paths(prefix, ns)
        meta = index_metadata(staging).get(ns, {"indexes": [], "options": {}})
        staging.put_bytes(meta_key, metadata_json(ns, meta["indexes"], meta["options"]).encode())
        data = b"".join(encode(r["doc"]) for r in records)
        staging.put_bytes(data_key, data)  # the data file last: the checkpoint names it once both exist
        return data_key, len(data)

    def read(self, staging: Staging, key: str) -> Iterator[tuple[Any, Optional[str]]]:
        ns = ns_of_dump_path(key)
        try:
            for doc in decode_all(staging.get_bytes(key), key):
                yield {"ns": ns, "doc": doc}, None
        except RecordError as exc:
            yield key, str(exc)
