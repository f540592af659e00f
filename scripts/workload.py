"""Demo/test workload: a source table seeded with every DynamoDB type, and a live writer that keeps
putting, updating and deleting items (the same keys more than once) while a migration runs."""

from __future__ import annotations

import random
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

import workload_base


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


class LiveWriter(workload_base.LiveWriterBase):
    """Puts new items, updates and re-puts existing ones, deletes some — the same keys more than once."""

    kinds = ("put_new", "update", "update_of_deleted", "put_again", "delete")

    def __init__(self, endpoint: str, table: str, existing: int, rate: float = 50.0, seed_: int = 1):
        super().__init__(rate, seed_)
        self.c, self.table, self.existing = client(endpoint), table, existing
        self.rnd = self.rng
        self.next_new = existing
        self.hot = [self.rnd.randrange(existing) for _ in range(50)]  # keys changed many times
        self.avoid: set[int] = set()  # keys the writer leaves alone (the demo damages them on the target)
        self.touched: set[int] = set()

    def key(self, i):
        it = make_item(i)
        return {"pk": it["pk"], "sk": it["sk"]}

    def leaves(self, i: int) -> bool:
        """Take key i out of the writer's hands from now on; False if the writer has already written it (a
        change of it may still be on its way to the target)."""
        self.avoid.add(i)
        return i not in self.touched and i not in self.hot

    def _mine(self, i: int) -> bool:
        if i in self.avoid:
            return False
        self.touched.add(i)
        return True

    def step(self):
        r = self.rnd.random()
        if r < 0.25:
            self.c.put_item(TableName=self.table, Item=make_item(self.next_new, 1))
            self.next_new += 1
            self.counts["put_new"] += 1
        elif r < 0.6:
            i = self.rnd.choice(self.hot) if self.rnd.random() < 0.5 else self.rnd.randrange(self.next_new)
            if not self._mine(i):
                return
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
            if not self._mine(i):
                return
            self.c.put_item(TableName=self.table, Item=make_item(i, self.rnd.randint(2, 10**6)))
            self.counts["put_again"] += 1
        else:
            i = self.rnd.randrange(self.next_new)
            if not self._mine(i):
                return
            self.c.delete_item(TableName=self.table, Key=self.key(i))
            self.counts["delete"] += 1


GHOST_BASE = 50_000_000  # item numbers no writer reaches: the damage's extra items


def damage(endpoint: str, table: str, indices: list[int], extras: int, seed_: int = 11) -> dict[str, list[dict]]:
    """Behind Turnout's back, on a DynamoDB-API target: delete the first third of ``indices``' items, alter the
    rest (an attribute changed, one added), and add ``extras`` items the source never had. Returns the keys per
    kind (deleted, altered, added)."""
    c, rnd = client(endpoint), random.Random(seed_)
    third = -(-len(indices) // 3) if extras else len(indices) // 2  # with extras: a third (rounded up) deleted
    out: dict[str, list[dict]] = {"deleted": [], "altered": [], "added": []}
    for n, i in enumerate(indices):
        it = make_item(i)
        key = {"pk": it["pk"], "sk": it["sk"]}
        if n < third:
            c.delete_item(TableName=table, Key=key)
            out["deleted"].append(key)
        else:
            c.update_item(TableName=table, Key=key, UpdateExpression="SET note = :n, tampered = :t",
                          ExpressionAttributeValues={":n": {"S": f"tampered {rnd.random()}"}, ":t": {"BOOL": True}})
            out["altered"].append(key)
    for k in range(extras):
        it = make_item(GHOST_BASE + k)
        c.put_item(TableName=table, Item=it)
        out["added"].append({"pk": it["pk"], "sk": it["sk"]})
    return out


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


def full_compare(src_endpoint: str, src_table: str, dst_endpoint: str, dst_table: str) -> dict:
    """Independent full-scan comparison (not the engine's validator): every item, canonical form."""
    from turnout.codec import canonical, key_text

    def index(ep, t):
        return {key_text({"pk": it["pk"], "sk": it["sk"]}): canonical(it) for it in scan_all(ep, t)}

    return workload_base.diff(index(src_endpoint, src_table), index(dst_endpoint, dst_table))


# the properties Cosmos DB adds to every document (Cosmos DB's documentation), left out of the comparison


def full_compare_cosmos(src_endpoint: str, src_table: str, cosmos: dict, spec_path, staging=None) -> dict:
    """Full comparison for the Cosmos route, independent of Turnout: every source item mapped by the documented
    rules (scripts/independent_cosmos.py) against every document in the container. The spec's mapping settings
    are read with plain YAML (``${VAR}`` never appears in the target section of the demo specs)."""
    import yaml

    import independent_cosmos

    t = yaml.safe_load(Path(spec_path).read_text())["target"]
    if t.get("reserved_attribute_policy", "prefix") != "prefix":
        raise NotImplementedError("the independent Cosmos comparison knows reserved_attribute_policy: prefix only")
    return independent_cosmos.full_compare(
        src_endpoint, src_table, cosmos["endpoint"], cosmos["key"], t["database"], t["container"],
        id_template=t.get("id_template", "{pk}|{sk}"), partition_key=tuple(t.get("partition_key", ["/pk"])),
        number_policy=t.get("number_policy", "string"),
        reserved_prefix="ddb_")
