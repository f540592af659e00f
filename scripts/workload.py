"""Demo/test workload: a source table seeded with every DynamoDB type, and a live writer that keeps
putting, updating and deleting items (the same keys more than once) while a migration runs."""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def client(endpoint: str):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local", config=Config(max_pool_connections=32,
                                                                      retries={"max_attempts": 10}))


def create_table(c, table: str, stream: bool = False, gsi: bool = True) -> None:
    kw = dict(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}]
        + ([{"AttributeName": "kind", "AttributeType": "S"}] if gsi else []),
        BillingMode="PAY_PER_REQUEST",
    )
    if gsi:
        kw["GlobalSecondaryIndexes"] = [{"IndexName": "by_kind", "KeySchema": [
            {"AttributeName": "kind", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}]
    if stream:
        kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    c.create_table(**kw)


def make_item(i: int, version: int = 0, rnd: random.Random | None = None) -> dict:
    """An item with every DynamoDB type; a few are large (near 400 KB), keys are unicode."""
    rnd = rnd or random.Random(i * 7919 + version)
    item = {
        "pk": {"S": f"cust#{i % 997:04d}-ключ"},
        "sk": {"S": f"order#{i:08d}"},
        "kind": {"S": ["order", "invoice", "refund"][i % 3]},
        "n38": {"N": str(10**37 + i * 1_000_003 + version)},
        "price": {"N": f"{rnd.randint(0, 10**6)}.{rnd.randint(0, 99):02d}"},
        "neg": {"N": f"-0.{rnd.randint(1, 10**9):09d}"},
        "paid": {"BOOL": bool((i + version) % 2)},
        "note": {"NULL": True},
        "blob": {"B": rnd.randbytes(16)},
        "tags": {"SS": sorted({f"t{rnd.randint(0, 9)}" for _ in range(3)})},
        "scores": {"NS": sorted({str(rnd.randint(-50, 50)) for _ in range(3)})},
        "chunks": {"BS": [bytes([j, i % 256]) for j in range(2)]},
        "addr": {"M": {"city": {"S": "Zürich 🏔"}, "zip": {"N": str(8000 + i % 100)},
                       "lines": {"L": [{"S": "line 1"}, {"N": "2"}, {"BOOL": False}, {"NULL": True}]}}},
        "v": {"N": str(version)},
    }
    if i % 5000 == 7:
        item["big"] = {"B": rnd.randbytes(380 * 1024)}
    return item


def seed(endpoint: str, table: str, n: int, threads: int = 8) -> int:
    c = client(endpoint)

    def write(lo):
        reqs = [{"PutRequest": {"Item": make_item(i)}} for i in range(lo, min(lo + 25, n))]
        while reqs:
            r = c.batch_write_item(RequestItems={table: reqs})
            reqs = r.get("UnprocessedItems", {}).get(table, [])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, range(0, n, 25)))
    return n


class LiveWriter(threading.Thread):
    """Puts new items, updates and re-puts existing ones, deletes some — the same keys more than once."""

    def __init__(self, endpoint: str, table: str, existing: int, rate: float = 50.0, seed_: int = 1):
        super().__init__(daemon=True)
        self.c, self.table, self.existing, self.rate = client(endpoint), table, existing, rate
        self.rnd = random.Random(seed_)
        self.stop_event = threading.Event()
        self.counts = {"put_new": 0, "update": 0, "update_of_deleted": 0, "put_again": 0, "delete": 0, "errors": 0}
        self.next_new = existing
        self.hot = [self.rnd.randrange(existing) for _ in range(50)]  # keys changed many times

    def key(self, i):
        it = make_item(i)
        return {"pk": it["pk"], "sk": it["sk"]}

    def step(self):
        r = self.rnd.random()
        if r < 0.25:
            self.c.put_item(TableName=self.table, Item=make_item(self.next_new, 1))
            self.next_new += 1
            self.counts["put_new"] += 1
        elif r < 0.6:
            i = self.rnd.choice(self.hot) if self.rnd.random() < 0.5 else self.rnd.randrange(self.next_new)
            try:
                self.c.update_item(TableName=self.table, Key=self.key(i), ConditionExpression="attribute_exists(pk)",
                                   UpdateExpression="SET v = v + :one, note = :s ADD tags :t",
                                   ExpressionAttributeValues={":one": {"N": "1"}, ":s": {"S": f"upd {time.time()}"},
                                                              ":t": {"SS": [f"u{self.rnd.randint(0, 3)}"]}})
                self.counts["update"] += 1
            except self.c.exceptions.ConditionalCheckFailedException:
                self.counts["update_of_deleted"] += 1
        elif r < 0.85:
            i = self.rnd.choice(self.hot)
            self.c.put_item(TableName=self.table, Item=make_item(i, self.rnd.randint(2, 10**6)))
            self.counts["put_again"] += 1
        else:
            i = self.rnd.randrange(self.next_new)
            self.c.delete_item(TableName=self.table, Key=self.key(i))
            self.counts["delete"] += 1

    def run(self):
        interval = 1.0 / self.rate if self.rate else 0
        nxt = time.monotonic()
        while not self.stop_event.is_set():
            try:
                self.step()
            except Exception:
                self.counts["errors"] += 1
            # steady pace; after a stall (a busy machine) carry on at the rate rather than burst to catch up
            nxt = max(nxt + interval, time.monotonic() - 1.0)
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def stop(self) -> dict:
        self.stop_event.set()
        self.join(300)
        if self.is_alive():  # a write after the freeze would be a difference nobody made: say so, loudly
            raise RuntimeError(f"the live writer did not stop within 300 s: {dict(self.counts)}")
        return dict(self.counts)


def scan_all(endpoint: str, table: str):
    """Every item of a table, consistent reads, page by page."""
    c, start = client(endpoint), None
    while True:
        kw = {"TableName": table, "ConsistentRead": True}
        if start:
            kw["ExclusiveStartKey"] = start
        r = c.scan(**kw)
        yield from r["Items"]
        start = r.get("LastEvaluatedKey")
        if not start:
            return


def _diff(a: dict, b: dict) -> dict:
    missing = [k for k in a if k not in b]
    extra = [k for k in b if k not in a]
    different = [k for k in a if k in b and a[k] != b[k]]
    return {"source": len(a), "target": len(b), "missing": missing[:20], "extra": extra[:20],
            "different": different[:20], "differences": len(missing) + len(extra) + len(different)}


def full_compare(src_endpoint: str, src_table: str, dst_endpoint: str, dst_table: str) -> dict:
    """Independent full-scan comparison (not the engine's validator): every item, canonical form."""
    from turnout.codec import canonical, key_text

    def index(ep, t):
        return {key_text({"pk": it["pk"], "sk": it["sk"]}): canonical(it) for it in scan_all(ep, t)}

    return _diff(index(src_endpoint, src_table), index(dst_endpoint, dst_table))


def full_compare_cosmos(src_endpoint: str, src_table: str, cosmos: dict, spec_path, staging) -> dict:
    """Full comparison for the Cosmos route: every source item through the spec's mapping against every
    document in the container (system properties stripped)."""
    import os

    from azure.cosmos import CosmosClient

    from turnout.adapters.cosmos import strip_system
    from turnout.adapters.cosmos import transform as cosmos_transform
    from turnout.spec import load_spec

    os.environ.setdefault("TURNOUT_STAGING", str(staging))
    spec = load_spec(spec_path)
    tr = cosmos_transform(spec, {"source_key": ["pk", "sk"], "source_key_types": ["S", "S"]})
    want = {d["id"]: json.dumps(d, sort_keys=True) for d in (tr.item(it) for it in scan_all(src_endpoint, src_table))}
    cont = CosmosClient(cosmos["endpoint"], credential=cosmos["key"], enable_endpoint_discovery=False) \
        .get_database_client(spec.target.database).get_container_client(spec.target.container)
    have = {d["id"]: json.dumps(strip_system(d), sort_keys=True)
            for d in cont.query_items("SELECT * FROM c", enable_cross_partition_query=True)}
    return _diff(want, have)


def pace(t0: float, n: int, rate: float) -> None:
    """Sleep so that n operations since t0 (time.monotonic) keep to `rate` per second (0 = no limit)."""
    if rate:
        delay = t0 + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
