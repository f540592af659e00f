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
    old_image: Optional[Item] = None  # the before image, where the source gives one the transform needs


@dataclass
class WriteResult:
    written: int = 0
    rejected: list[tuple[Item, str]] = field(default_factory=list)  # (item or key, reason)


@dataclass
class Poll:
    """What one look at the source's change stream found."""

    changes: list[Change]
    rejected: list[tuple[Any, str]] = field(default_factory=list)  # (record, reason): dead-lettered
    at_tip: bool = False  # every partition of the stream was read up to its end in this look
    skipped_old: int = 0  # changes from before the recorded position (harmless, not applied)


class ChangeReader(Protocol):
    """Reads the source's changes from a checkpointed position, in per-key order."""

    def poll(self) -> Poll: ...

    def state(self) -> dict:
        """A JSON checkpoint of the position after every change returned so far."""

    def advance_past(self, change: Change) -> None:
        """Move the position past a change already in the change log (adopted after a restart)."""


class Source(Protocol):
    def describe(self) -> SourceInfo: ...

    def record_position(self, allow_enable: bool) -> dict:
        """Start change capture if allowed and return the position (JSON) from which every later change is read."""

    def change_reader(self, position: dict, state: dict | None) -> ChangeReader: ...

    def read_segment(self, segment: int, total: int, resume: Any, page_items: int) -> Iterator[tuple[list[Item], Any]]:
        """Yield (items of one page, resume token after it); token None after the last page."""

    def scan(self, segment: int, total: int) -> Iterator[Item]: ...

    def get(self, key: Item) -> Optional[Item]: ...


class Sink(Protocol):
    capabilities: Capabilities

    def ensure_target(self, info: SourceInfo, key_attributes: list[str]) -> dict: ...

    def write_items(self, items: list[Item]) -> WriteResult:
        """Write one batch; return only after the target acknowledged every item it accepted."""

    def apply_changes(self, changes: list[Change]) -> WriteResult:
        """Upserts and deletes by key, at most one change per key in the list."""

    def scan(self, segment: int, total: int) -> Iterator[Item]: ...

    def get(self, key: Item) -> Optional[Item]: ...
