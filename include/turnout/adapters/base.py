"""The engine's seams: what a source and a sink must offer.

A route is a (source, transform, sink) triple. The phases in :mod:`turnout.phases` only talk to
these interfaces, so a new database is one adapter module: config, capabilities, client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Protocol

from ..codec import Item


@dataclass(frozen=True)
class Capabilities:
    """What the target accepts; the loader batches and checks records by these."""

    max_batch_items: int
    max_item_bytes: int
    max_batch_bytes: int = 16 * 1024 * 1024
    supports_delete: bool = True


@dataclass
class SourceInfo:
    key_attributes: list[str]  # partition key first, then sort key
    key_schema: list[dict]
    attribute_definitions: list[dict]
    item_count: int
    size_bytes: int
    stream: dict = field(default_factory=dict)
    indexes: dict = field(default_factory=dict)


@dataclass
class Change:
    """One change, as written to the durable change log: a full image (put) or a delete by key."""

    key: Item
    op: str  # "put" | "delete"
    image: Optional[Item]
    version: list[int]  # compared lexicographically; increases per key in the source's order
    created_at: float  # epoch seconds the source stamped on the change
    origin: str = ""  # where it came from (shard/sequence, binlog position, ...)


@dataclass
class WriteResult:
    written: int = 0
    rejected: list[tuple[Item, str]] = field(default_factory=list)  # (item or key, reason)


class Source(Protocol):
    def describe(self) -> SourceInfo: ...

    def read_segment(self, segment: int, total: int, resume: Any, page_items: int) -> Iterator[tuple[list[Item], Any]]:
        """Yield (items of one page, resume token after it); token None after the last page."""


class Sink(Protocol):
    capabilities: Capabilities

    def ensure_target(self, info: SourceInfo, key_attributes: list[str]) -> dict: ...

    def write_items(self, items: list[Item]) -> WriteResult:
        """Write one batch; return only after the target acknowledged every item it accepted."""

    def apply_changes(self, changes: list[Change]) -> WriteResult:
        """Upserts and deletes by key, at most one change per key in the list."""

    def scan(self, segment: int, total: int) -> Iterator[Item]: ...

    def get(self, key: Item) -> Optional[Item]: ...

    def count(self) -> int: ...
