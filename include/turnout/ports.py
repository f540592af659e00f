"""The engine's ports: the typed seams every adapter fills and every phase asks.

A route (:mod:`turnout.routes`) is a source adapter, a target adapter and a transform. The phases in
:mod:`turnout.phases` only talk to the Protocols below (checked by mypy in ``make lint``), so a new
database is one adapter package that declares its capabilities as data and implements these methods.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, runtime_checkable

from .codec import Item


@dataclass(frozen=True)
class Capabilities:
    """What the target accepts, as data: the loader batches and checks records by these."""

    max_batch_items: int
    max_item_bytes: int
    secondary_indexes: bool = False  # builds the source's secondary indexes itself (create_indexes)
    key_listing: bool = False  # lists and deletes keys per group (reconciliation of deletes)
    # takes a ``pace(units)`` callable (the sink's ``pace`` attribute) and calls it before every write request,
    # retries of throttled requests included, so an adaptive budget governs what reaches the server
    paces_writes: bool = False


@dataclass(frozen=True)
class SourceCapabilities:
    """What a source offers, as data (the phases ask these instead of probing with hasattr)."""

    reports_deletes: bool  # its change stream carries deletes; if not, deletes are reconciled by key sets
    export_kinds: tuple[str, ...]  # "scan" (parallel segments), "keyset" (key ranges), "native", "dump"
    ordering: str  # the order changes arrive in, as the source guarantees it
    key_listing: bool = False  # lists its keys per group (reconciliation of deletes)
    stamps_changes: bool = True  # every change carries the source's own time (the cutover proves the freeze by it)
    # "source": a change's version orders it against every other change to its key (binlog position, a counter
    # kept by the capture). "log": only the change log's order does (DynamoDB: sequence numbers are ordered within
    # a shard, not across a split's parent and children), so the apply versions each change by its log position.
    versions: str = "source"


@dataclass(frozen=True)
class Capacity:
    """What a table or container can serve per second, in its own units, as it reports it (None: not reported).

    ``basis`` says where the figure comes from ("provisioned", "warm throughput", "on-demand maximum", "offer",
    "autoscale maximum", or why there is none); ``unit`` names the units ("RCU/WCU", "RU", "items")."""

    read_units_per_second: Optional[float] = None
    write_units_per_second: Optional[float] = None
    unit: str = "items"
    basis: str = "not reported"


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

    @property
    def put_image(self) -> Item:
        """The full image of a put (a put without one is a bug upstream, never written as an empty item)."""
        if self.image is None:
            raise ValueError(f"change {self.origin or self.key}: a put without an image")
        return self.image


@dataclass
class WriteResult:
    written: int = 0
    rejected: list[tuple[Item, str]] = field(default_factory=list)  # (item or key, reason)


@dataclass
class Poll:
    """What one look at the source's change stream found."""

    changes: list[Change]
    rejected: list[tuple] = field(default_factory=list)  # (record, reason[, source key]): dead-lettered
    at_tip: bool = False  # every partition of the stream was read up to its end in this look
    skipped_old: int = 0  # changes from before the recorded position (harmless, not applied)


Record = Any  # one record in the source's or target's own form (a DynamoDB item, a document, ...)
Page = tuple[list[Any], Any]  # (records of one page, resume token after it; None after the last page)


@runtime_checkable
class Closeable(Protocol):
    def close(self) -> None: ...


class ChangeReader(Protocol):
    """Reads the source's changes from a checkpointed position, in per-key order. ``plain_images``: every key and
    image it returns is plain wire (:func:`turnout.chunks.plain_wire`) by construction, so the change-log writer
    need not check them again."""

    plain_images: bool

    def poll(self) -> Poll: ...

    def state(self) -> dict:
        """A JSON checkpoint of the position after every change returned so far."""

    def advance_past(self, change: Change) -> None:
        """Move the position past a change already in the change log (adopted after a restart)."""

    def close(self) -> None: ...


class Codec(Protocol):
    """A record's staging form (JSON), canonical text, hash and key text."""

    def to_json(self, rec: Any) -> Any: ...

    def from_json(self, doc: Any) -> Any: ...

    def canonical(self, rec: Any) -> str: ...

    def hash(self, rec: Any) -> bytes: ...

    def key_text(self, key: Any) -> str: ...


class Source(Protocol):
    capabilities: SourceCapabilities

    def describe(self) -> SourceInfo: ...

    def record_position(self, allow_enable: bool | None = None) -> dict:
        """Start change capture if allowed and return the position (JSON) from which every later change is read."""

    def change_reader(self, position: dict, state: dict | None, limit: int = 1000) -> ChangeReader: ...

    def plan_units(self) -> list[dict]:
        """The export units (JSON), fixed with the recorded position: scan segments or key ranges."""

    def read_unit(self, unit: dict, resume: Any, page_items: int) -> Iterator[Page]:
        """Yield (records of one page, resume token after it); token None after the last page."""

    def unit_group(self, unit: dict) -> str:
        """The table or namespace an export unit reads (what a re-copy by table names)."""

    def read_units(self, records: list[Any]) -> float:
        """What reading one page of ``records`` cost in the source's own units (DynamoDB: RCU as the server
        reported it for the last page this thread read, else estimated from the sizes); items otherwise. The
        export's read budget is counted in these."""

    def sample(self, n: int) -> list[Any]:
        """Up to ``n`` records read cheaply (one page; a few rows of each table or namespace), for the plan's
        item sizes."""

    def capacity(self) -> Capacity:
        """The source's read and write capacity per second, as it reports it (for percentage budgets, the plan)."""

    def scan(self, segment: int = 0, total: int = 1) -> Iterator[Any]: ...

    def get(self, key: Any) -> Optional[Any]: ...

    def close(self) -> None: ...


class KeyLister(Protocol):
    """A side that lists its keys per group (namespace): reconciliation of deletes uses it."""

    def key_groups(self) -> list[str]: ...

    def keys(self, group: str) -> Iterator[Any]:
        """The keys within one group (e.g. the ``_id``s of one collection)."""

    def group_key(self, group: str, key: Any) -> Any:
        """The full record key of a key within a group (what ``get`` takes)."""


class Sink(Protocol):
    capabilities: Capabilities

    def exists(self) -> bool: ...

    def ensure_target(self, info: SourceInfo, key_attributes: list[str], rename: Mapping[str, str] | None = None,
                      paths: list[str] | None = None) -> dict: ...

    def write_items(self, items: list[Any]) -> WriteResult:
        """Write one batch; return only after the target acknowledged every item it accepted."""

    def write_units(self, items: list[Any]) -> float:
        """What writing ``items`` costs in the target's own capacity units (DynamoDB: one WCU per started KB of
        each item); a target without such a unit counts items. The load's ``write_units_per_second`` budget is
        counted in these."""

    def apply_changes(self, changes: list[Change]) -> WriteResult:
        """Upserts and deletes by key, at most one change per key in the list."""

    def capacity(self) -> Capacity:
        """The target's capacity per second, as it reports it (an absent target: nothing reported)."""

    def scan(self, segment: int = 0, total: int = 1) -> Iterator[Any]: ...

    def get(self, key: Any) -> Optional[Any]: ...

    def close(self) -> None: ...


class KeyedSink(Sink, KeyLister, Protocol):
    """A sink that can also delete keys by group (capabilities.key_listing)."""

    def delete_keys(self, group: str, keys: list[Any]) -> int: ...


class IndexingSink(Sink, Protocol):
    """A sink that builds secondary indexes (capabilities.secondary_indexes)."""

    def create_indexes(self, group: str, indexes: list[dict]) -> list[str]: ...

    def duplicates(self, group: str, fields: list[str], limit: int = 20) -> list[dict]:
        """Values of ``fields`` that more than one item holds: [{"value": ..., "count": n, "ids": [...]}]."""
        ...


class Transform(Protocol):
    """The route's pure per-record transform: the same at load, apply and validation."""

    @property
    def target_key(self) -> tuple[str, ...]: ...

    @property
    def partition_key_paths(self) -> tuple[str, ...]: ...

    @property
    def grouped(self) -> bool: ...

    def item(self, rec: Any) -> Any: ...

    def change(self, c: Change) -> list[Change]: ...

    def target_key_of(self, target_item: Any) -> Any: ...

    def source_key_of(self, target_item: Any) -> Optional[Any]: ...

    def source_key_from(self, rec: Any) -> Any: ...

    def key(self, source_key: Any) -> Any:
        """The target key of a source key (RecordError where the key alone cannot tell it)."""
        ...

    def group_of(self, target_item: Any) -> Optional[str]:
        """The source table/collection a target item came from (per-group counts), or None."""

    def group_of_key(self, key: Any) -> Optional[str]:
        """The target group (namespace) of a key, for per-group lag, or None."""

    def target_group(self, source_group: str) -> str:
        """The target's group (namespace) for a source group."""


class ChunkFormat(Protocol):
    """How export chunks are laid out in staging (JSON lines, or a mongodump directory)."""

    def write(self, staging: Any, prefix: str, records: list[Any], unit: dict) -> tuple[str, int]:
        """Write one chunk under ``prefix``; return (the key its checkpoint names, bytes)."""

    def read(self, staging: Any, key: str) -> Iterator[tuple[Any, Optional[str]]]:
        """(record, None) or (raw, reason) for every record of a chunk."""


class NativeExport(Protocol):
    """A source's own point-in-time export (DynamoDB ExportTableToPointInTime)."""

    def start(self, plan: dict, now: float) -> str: ...

    def poll(self, plan: dict) -> dict:
        """{"status": ...} and, once completed, {"files": [...], "bucket": ...}."""

    def read_file(self, plan: dict, file: dict) -> Iterator[Any]: ...


@dataclass(frozen=True)
class PreflightInputs:
    """What a source adapter's preflight may use: the two ends, the spec and a few engine services."""

    spec: Any  # turnout.spec.MigrationSpec
    source: Any  # the opened Source
    sink: Any  # the opened Sink
    dry_run: bool
    build_transform: Callable[[dict], Any]  # facts (source_key, source_key_types, source_schema) -> Transform
    estimate: Callable[[int], tuple[float, float]]  # rows -> (items per second, hours)
    put_state: Callable[[str, bytes], None]  # write a state file (the layout names it)
    target_name: str  # "table 'orders'", "container shop/orders", ...
    log: Any


@dataclass(frozen=True)
class SourceAdapter:
    """One database as a source, declared as data; every factory imports its client lazily."""

    kind: str
    codec: Callable[[], Codec]
    open: Callable[[Any], Source]  # (the Context: spec, source_config) -> Source
    facts: Callable[[Any], dict]  # Source -> what the transform needs when preflight has not recorded it
    preflight: Callable[[PreflightInputs], dict]  # source-specific checks -> the preflight summary
    chunks: Callable[[], ChunkFormat]
    native_export: Optional[Callable[[Any], NativeExport]] = None  # (the Context) -> NativeExport
    index_definitions: Optional[Callable[[Any], dict[str, list[dict]]]] = None  # staging -> {group: indexes}


@dataclass(frozen=True)
class TargetAdapter:
    """One database as a target, declared as data."""

    kind: str
    codec: Callable[[], Codec]
    open: Callable[[Any], Sink]  # (the Context) -> Sink
    name: Callable[[Any], str]  # target spec -> how a person names it
    index_timing: Callable[[Any], str] = lambda target: "none"  # "before_data", "after_data" or "none"
