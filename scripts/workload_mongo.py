"""A document workload for the Cosmos DB Mongo API → DocumentDB route: two databases, three collections, a seeder
and a live writer doing inserts, $set updates, whole-document replaces and deletes while a migration runs.

Only what the local MongoDB-wire server (nx-27017) stores faithfully is used here: ObjectId and string _ids,
strings, 32-bit and 64-bit-sized integers, doubles, booleans, nulls, dates, nested documents and arrays (nx-27017
fails to replace a document holding binary data). Every other BSON type is tested at the codec level (tests/unit/test_mongo_codec.py).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time

from bson import ObjectId
from pymongo import MongoClient

import workload

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


class LiveWriter(threading.Thread):
    """Inserts, $set updates, replaces and deletes at a target rate; the same documents more than once."""

    def __init__(self, uri: str, rate: float = 30, seed: int = 13, prefix: str = ""):
        super().__init__(daemon=True)
        self.namespaces = namespaces(prefix)
        self.uri, self.rate, self.rng = uri, rate, random.Random(seed)
        self.stop_event = threading.Event()
        self.counts = {"insert": 0, "update": 0, "replace": 0, "delete": 0}
        self.errors: list[str] = []
        self.ids: dict[str, list] = {}

    def stop(self) -> dict:
        self.stop_event.set()
        self.join(300)
        if self.is_alive():  # a write after the freeze would be a difference nobody made: say so, loudly
            raise RuntimeError(f"the live writer did not stop within 300 s: {dict(self.counts)}")
        return dict(self.counts)

    def run(self) -> None:
        c = client(self.uri)
        rng = self.rng
        for ns in self.namespaces:
            db, coll = ns.split(".", 1)
            self.ids[ns] = [d["_id"] for d in c[db][coll].find({}, {"_id": 1}).limit(5000)]
        t0, n, k = time.monotonic(), 0, 0
        while not self.stop_event.is_set():
            ns = rng.choice(self.namespaces)
            db, coll = ns.split(".", 1)
            col, ids = c[db][coll], self.ids[ns]
            r = rng.random()
            try:
                if r < 0.3 or not ids:
                    k += 1
                    _id = f"{coll}-new-{k:07d}" if coll == "people" else ObjectId()
                    col.insert_one({"_id": _id, **_doc(rng, 10**6 + k, ns)})
                    ids.append(_id)
                    self.counts["insert"] += 1
                elif r < 0.6:
                    col.update_one({"_id": rng.choice(ids[-200:] if rng.random() < 0.5 else ids)},
                                   {"$set": {"score": rng.uniform(0, 1), "maybe": f"u{n}", "address.city": "Quito"}})
                    self.counts["update"] += 1
                elif r < 0.8:
                    _id = rng.choice(ids)
                    col.replace_one({"_id": _id}, {**_doc(rng, n, ns), "replaced": True})
                    self.counts["replace"] += 1
                else:
                    _id = ids.pop(rng.randrange(len(ids)))
                    col.delete_one({"_id": _id})
                    self.counts["delete"] += 1
            except Exception as exc:  # counted; the writer goes on
                self.errors.append(f"{type(exc).__name__}: {exc}")
            n += 1
            workload.pace(t0, n, self.rate)
        c.close()


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

    a, b = index(src_uri), index(dst_uri)
    missing = [k for k in a if k not in b]
    extra = [k for k in b if k not in a]
    different = [k for k in a if k in b and a[k] != b[k]]
    return {"source": len(a), "target": len(b), "missing": missing[:20], "extra": extra[:20],
            "different": different[:20], "differences": len(missing) + len(extra) + len(different)}
