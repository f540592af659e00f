"""Pure per-record transforms. The same function runs at load, at change apply and on the source
side of validation, so "what the target should hold" has exactly one definition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .codec import Item
from .errors import RecordError
from .ports import Change


class TransformDefaults:
    """What a transform says when its route has no groups (tables/namespaces) or partition paths."""

    partition_key_paths: tuple[str, ...] = ()
    grouped = False  # target items say which source table/namespace they came from (group_of)

    def group_of(self, target_item: Item) -> Optional[str]:
        return None

    def group_of_key(self, key: Item) -> Optional[str]:
        return None

    def target_group(self, source_group: str) -> str:
        return source_group

    def key(self, source_key: Any) -> Any:
        """The target key of a source key, where the key alone tells it (a key redesign may need the whole row)."""
        raise RecordError(f"the target key of {source_key!r} cannot be told from the source key alone on this route "
                          "(the key templates use other columns)")


@dataclass(frozen=True)
class Transform(TransformDefaults):
    source_key: tuple[str, ...]  # source key attributes (partition first)
    rename: tuple[tuple[str, str], ...] = ()
    drop: frozenset[str] = frozenset()

    @classmethod
    def from_spec(cls, mapping, source_key: list[str]) -> "Transform":
        dropped_keys = set(mapping.drop) & set(source_key)
        if dropped_keys:
            raise RecordError(f"mapping.drop removes key attributes {sorted(dropped_keys)}")
        return cls(tuple(source_key), tuple(sorted(mapping.rename.items())), frozenset(mapping.drop))

    @property
    def target_key(self) -> tuple[str, ...]:
        r = dict(self.rename)
        return tuple(r.get(a, a) for a in self.source_key)

    def item(self, item: Item) -> Item:
        for a in self.source_key:
            if a not in item:
                raise RecordError(f"item lacks key attribute {a!r}", key={k: item[k] for k in self.source_key if k in item})
        if not self.rename and not self.drop:
            return item
        r = dict(self.rename)
        out: Item = {}
        came: dict[str, str] = {}
        for k, v in item.items():
            if k in self.drop:
                continue
            name = r.get(k, k)
            if name in out:  # a rename onto an attribute the item has: refuse, never overwrite
                raise RecordError(f"attributes {came[name]!r} and {k!r} both become {name!r} (mapping.rename); rename "
                                  "or drop one of them", key={a: item[a] for a in self.source_key if a in item})
            out[name], came[name] = v, k
        return out

    def key(self, source_key: Item) -> Item:
        """The target key of a source key."""
        r = dict(self.rename)
        try:
            return {r.get(a, a): source_key[a] for a in self.source_key}
        except KeyError as exc:
            raise RecordError(f"key lacks attribute {exc.args[0]!r}", key=source_key) from None

    def target_key_of(self, target_item: Item) -> Item:
        return {a: target_item[a] for a in self.target_key}

    def source_key_from(self, item: Item) -> Item:
        """The key of a source item."""
        return {a: item[a] for a in self.source_key}

    def source_key_of(self, target_item: Item) -> Item:
        """The source key an item in the target came from (for point rechecks of target-only keys)."""
        r = dict(self.rename)
        return {a: target_item[r.get(a, a)] for a in self.source_key}

    def change(self, c: Change) -> list[Change]:
        """A source change as target changes (one here; a key-redesign transform may emit a delete of the
        old key and a put of the new one). Versions and times travel unchanged."""
        if c.op == "delete":
            return [Change(key=self.key(c.key), op="delete", image=None, version=c.version,
                           created_at=c.created_at, origin=c.origin)]
        return [Change(key=self.key(c.key), op="put", image=self.item(c.put_image), version=c.version,
                       created_at=c.created_at, origin=c.origin)]
