"""A document workload for the Cosmos DB Mongo API → DocumentDB route: two databases, three collections, a seeder
and a live writer doing inserts, $set updates, whole-document replaces and deletes while a migration runs.

Only what the local MongoDB-wire server (nx-27017) stores faithfully is used here: ObjectId and string _ids,
strings, 32-bit and 64-bit-sized integers, doubles, booleans, nulls, dates, nested documents and arrays (nx-27017
fails to replace a document holding binary data). Every other BSON type is tested at the codec level (tests/unit/test_mongo_codec.py).
"""

from __future__ import annotations

import datetime as dt
import random

from bson import ObjectId
from pymongo import MongoClient

import workload_base

NAMESPACES = ("shop.people", "shop.orders", "audit.events")


def namespaces(prefix: str = "") -> tuple[str, ...]:
    """The workload's namespaces with a database-name prefix (tests share one server)."""
    return tuple(prefix + ns for ns in NAMESPACES)


def client(uri: str) -> MongoClient:
    return MongoClient(uri, serverSelectionTimeoutMS=10000)


def _doc(rng: random.Random, i: int, ns: str) -> dict:
    coll = ns.split(".", 1)[1]
    base = {
        "n": i,
        "name": rng.choice(["Ada", "Grace", "Émile", "宮崎", "Zoë"]) + f" {i}",
        "score": round(rng.uniform(-1000, 1000), 6),
        "big": rng.randint(2**40, 2**50),
        "active": rng.random() < 0.7,
        "maybe": None if rng.random() < 0.5 else "x",
        "when": dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=rng.randint(0, 10**11)),
        "tags": rng.sample(["a", "b", "c", "d", "e"], rng.randint(0, 4)),
        "address": {"city": rng.choice(["Lisbon", "Osaka", "Lagos"]), "zip": f"{rng.randint(0, 99999):05d}",
                    "geo": [round(rng.uniform(-90, 90), 4), round(rng.uniform(-180, 180), 4)]},
    }
    if coll == "orders":
        base["lines"] = [{"sku": f"S{rng.randint(1, 999)}", "qty": rng.randint(1, 5)} for _ in range(rng.randint(1, 4))]
    if coll == "events":
        base["kind"] = rng.choice(["login", "logout", "purchase"])
    return base


def seed(uri: str, per_collection: int, seed: int = 5, prefix: str = "") -> int:
    rng = random.Random(seed)
    c = client(uri)
    n = 0
    for ns in namespaces(prefix):
        db, coll = ns.split(".", 1)
        docs = []
        for i in range(per_collection):
            d = _doc(rng, i, ns)
            d["_id"] = f"{coll}-{i:07d}" if coll == "people" else ObjectId()
            docs.append(d)
        for k in range(0, len(docs), 1000):
            c[db][coll].insert_many(docs[k : k + 1000], ordered=False)
        n += len(docs)
    c.close()
    return n


class LiveWriter(workload_base.LiveWriterBase):
    """Inserts, $set updates, replaces and deletes at a target rate; the same documents more than once."""

    kinds = ("insert", "update", "replace", "delete")

    def __init__(self, uri: str, rate: float = 30, seed: int = 13, prefix: str = ""):
        super().__init__(rate, seed)
        self.namespaces = namespaces(prefix)
        self.uri = uri
        self.ids: dict[str, list] = {}
        self.c = None
        self.n = self.k = 0
        self.leave: set = set()  # (ns, _id) the writer no longer changes (a test damages them on the target)
        self.touched: set = set()

    def leaves(self, ns: str, _id) -> bool:
        """From now on the writer leaves this document alone; False if it has changed it already."""
        self.leave.add((ns, _id))
        return (ns, _id) not in self.touched

    def open(self) -> None:
        self.c = client(self.uri)
        for ns in self.namespaces:
            db, coll = ns.split(".", 1)
            self.ids[ns] = [d["_id"] for d in self.c[db][coll].find({}, {"_id": 1}).limit(5000)]

    def close(self) -> None:
        if self.c is not None:
            self.c.close()

    def _mine(self, ns: str, _id) -> bool:
        if (ns, _id) in self.leave:
            return False
        self.touched.add((ns, _id))
        return True

    def step(self) -> None:
        rng, n = self.rng, self.n
        self.n += 1
        ns = rng.choice(self.namespaces)
        db, coll = ns.split(".", 1)
        col, ids = self.c[db][coll], self.ids[ns]
        r = rng.random()
        if r < 0.3 or not ids:
            self.k += 1
            _id = f"{coll}-new-{self.k:07d}" if coll == "people" else ObjectId()
            col.insert_one({"_id": _id, **_doc(rng, 10**6 + self.k, ns)})
            ids.append(_id)
            self.counts["insert"] += 1
        elif r < 0.6:
            _id = rng.choice(ids[-200:] if rng.random() < 0.5 else ids)
            if not self._mine(ns, _id):
                return
            col.update_one({"_id": _id},
                           {"$set": {"score": rng.uniform(0, 1), "maybe": f"u{n}", "address.city": "Quito"}})
            self.counts["update"] += 1
        elif r < 0.8:
            _id = rng.choice(ids)
            if not self._mine(ns, _id):
                return
            col.replace_one({"_id": _id}, {**_doc(rng, n, ns), "replaced": True})
            self.counts["replace"] += 1
        else:
            _id = ids[rng.randrange(len(ids))]
            if not self._mine(ns, _id):
                return
            ids.remove(_id)
            col.delete_one({"_id": _id})
            self.counts["delete"] += 1


def full_compare(src_uri: str, dst_uri: str, namespaces=NAMESPACES) -> dict:
    """Independent comparison (not the engine's validator): every document, BSON bytes, per namespace."""
    import bson

    def index(uri):
        c = client(uri)
        out = {}
        for ns in namespaces:
            db, coll = ns.split(".", 1)
            for d in c[db][coll].find({}):
                out[f"{ns}|{d['_id']!r}"] = bson.encode(d)
        c.close()
        return out

    return workload_base.diff(index(src_uri), index(dst_uri))
