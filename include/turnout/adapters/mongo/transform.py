"""The Mongo route's transform: documents are copied as they are; only the namespace may move (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...codec import Item
from ...errors import RecordError
from ...ports import Change
from ...transform import TransformDefaults


@dataclass(frozen=True)
class MongoTransform(TransformDefaults):
    """Documents are copied as they are; only the namespace may move (``target.database_map``)."""

    grouped = True
    database_map: tuple[tuple[str, str], ...] = ()
    source_key: tuple[str, ...] = ("ns", "_id")
    target_key: tuple[str, ...] = ("ns", "_id")

    @classmethod
    def from_spec(cls, target) -> "MongoTransform":
        return cls(tuple(sorted(target.database_map.items())))

    def ns(self, ns: str) -> str:
        if not self.database_map and "." in ns:
            return ns
        db, _, coll = ns.partition(".")
        return f"{dict(self.database_map).get(db, db)}.{coll}"

    def source_ns(self, ns: str) -> str:
        db, _, coll = ns.partition(".")
        back = {t: s for s, t in self.database_map}
        return f"{back.get(db, db)}.{coll}"

    def item(self, rec: Item) -> Item:
        doc = rec.get("doc")
        if not isinstance(doc, dict) or "_id" not in doc:
            raise RecordError(f"document in {rec.get('ns')} has no _id")
        return {"ns": self.ns(rec["ns"]), "doc": doc}

    def key(self, source_key: Item) -> Item:
        return {"ns": self.ns(source_key["ns"]), "_id": source_key["_id"]}

    def target_key_of(self, target_item: Item) -> Item:
        return {"ns": target_item["ns"], "_id": target_item["doc"]["_id"]}

    def source_key_from(self, item: Item) -> Item:
        return {"ns": item["ns"], "_id": item["doc"]["_id"]}

    def source_key_of(self, target_item: Item) -> Item:
        return {"ns": self.source_ns(target_item["ns"]), "_id": target_item["doc"]["_id"]}

    def group_of(self, target_item: Item) -> str:
        return target_item["ns"]

    def group_of_key(self, key: Item) -> Optional[str]:
        ns = key.get("ns")
        return ns if isinstance(ns, str) else None

    def target_group(self, source_group: str) -> str:
        return self.ns(source_group)

    def change(self, c: Change) -> list[Change]:
        if c.op == "delete":
            return [Change(key=self.key(c.key), op="delete", image=None, version=c.version, created_at=c.created_at,
                           origin=c.origin)]
        return [Change(key=self.key(c.key), op="put", image=self.item(c.put_image), version=c.version,
                       created_at=c.created_at, origin=c.origin)]
