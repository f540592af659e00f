"""Checks scripts/cosmos-server/launch.js with the real Python SDK (azure-cosmos, sync and aio).

    .venv/bin/python scripts/cosmos-server/verify.py [--http|--https] [--items 20000] [--port N]
                                                     [--skip-perf]

Starts the launcher on 127.0.0.1 (a free port unless --port), runs the functional checks, then
the measurements, prints one line per check/figure, and stops the server. Exit status 0 when
every functional check passed. Only loopback traffic; every loop is bounded.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib3
import warnings

from azure.cosmos import CosmosClient, PartitionKey, exceptions
from azure.cosmos.aio import CosmosClient as AsyncCosmosClient
from azure.core import MatchConditions

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

RESULTS: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    RESULTS.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {name}{'  -- ' + detail if detail else ''}", flush=True)


def expect_error(name, fn, exc_type, status=None):
    try:
        fn()
    except exc_type as e:  # noqa: PERF203
        code = getattr(e, "status_code", None)
        check(name, status is None or code == status, f"{type(e).__name__} status={code}")
        return e
    except Exception as e:  # noqa: BLE001
        check(name, False, f"unexpected {type(e).__name__}: {str(e)[:200]}")
        return e
    check(name, False, "no error raised")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, http: bool) -> subprocess.Popen:
    args = ["node", os.path.join(HERE, "launch.js"), str(port)] + (["--http"] if http else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=None, text=True)
    line = proc.stdout.readline().strip()
    if line != f"listening on 127.0.0.1:{port}":
        proc.kill()
        raise SystemExit(f"launcher did not start: {line!r}")
    return proc


def client_kwargs(http: bool, discovery: bool = False) -> dict:
    if http:
        return {"enable_endpoint_discovery": discovery}
    return {"connection_verify": False}


def functional_sync(url: str, http: bool) -> None:
    client = CosmosClient(url, credential=KEY, **client_kwargs(http))
    db = client.create_database_if_not_exists("verify")
    c = db.create_container_if_not_exists("items", partition_key=PartitionKey(path="/pk"))
    h = db.create_container_if_not_exists(
        "hier", partition_key=PartitionKey(path=["/tenant", "/pk"], kind="MultiHash")
    )
    check("create database + container /pk + MultiHash [/tenant,/pk]", True)

    # CRUD on /pk
    r = c.upsert_item({"id": "a", "pk": "p1", "n": 1})
    check("upsert (create)", r["n"] == 1 and "_etag" in r)
    r2 = c.upsert_item({"id": "a", "pk": "p1", "n": 2})
    check("upsert (replace) changes etag", r2["_etag"] != r["_etag"] and r2["n"] == 2)
    got = c.read_item("a", partition_key="p1")
    check("read", got["n"] == 2 and got["_etag"] == r2["_etag"])
    r3 = c.replace_item("a", {"id": "a", "pk": "p1", "n": 3}, etag=r2["_etag"],
                        match_condition=MatchConditions.IfNotModified)
    check("replace with matching etag", r3["n"] == 3)
    expect_error("replace with wrong etag -> 412",
                 lambda: c.replace_item("a", {"id": "a", "pk": "p1", "n": 4}, etag=r2["_etag"],
                                        match_condition=MatchConditions.IfNotModified),
                 exceptions.CosmosAccessConditionFailedError, 412)
    expect_error("create duplicate -> 409", lambda: c.create_item({"id": "a", "pk": "p1"}),
                 exceptions.CosmosResourceExistsError, 409)
    p = c.patch_item("a", partition_key="p1",
                     patch_operations=[{"op": "incr", "path": "/n", "value": 10},
                                       {"op": "add", "path": "/tag", "value": "x"}])
    check("patch", p["n"] == 13 and p["tag"] == "x")
    c.delete_item("a", partition_key="p1")
    check("delete", True)
    expect_error("read missing -> CosmosResourceNotFoundError 404",
                     lambda: c.read_item("a", partition_key="p1"),
                     exceptions.CosmosResourceNotFoundError, 404)
    expect_error("read existing id with wrong partition key -> 404",
                 lambda: (c.upsert_item({"id": "b", "pk": "p1"}), c.read_item("b", partition_key="p2")),
                 exceptions.CosmosResourceNotFoundError, 404)
    expect_error("delete missing -> 404", lambda: c.delete_item("zz", partition_key="p1"),
                 exceptions.CosmosResourceNotFoundError, 404)
    expect_error("replace missing -> 404",
                 lambda: c.replace_item("zz", {"id": "zz", "pk": "p1"}),
                 exceptions.CosmosResourceNotFoundError, 404)
    expect_error("patch missing -> 404",
                 lambda: c.patch_item("zz", partition_key="p1",
                                      patch_operations=[{"op": "add", "path": "/x", "value": 1}]),
                 exceptions.CosmosResourceNotFoundError, 404)
    expect_error("read from missing container -> 404",
                 lambda: db.get_container_client("nope").read_item("a", partition_key="p1"),
                 exceptions.CosmosResourceNotFoundError, 404)
    expect_error("upsert into missing container -> 404",
                 lambda: db.get_container_client("nope").upsert_item({"id": "a", "pk": "p1"}),
                 exceptions.CosmosResourceNotFoundError, 404)

    # partition-key values that the package used to conflate
    c.upsert_item({"id": "k", "pk": 0, "v": "zero"})
    c.upsert_item({"id": "k", "pk": "", "v": "empty"})
    c.upsert_item({"id": "k", "pk": None, "v": "null"})
    c.upsert_item({"id": "k", "pk": "k", "v": "k"})
    vals = [c.read_item("k", partition_key=x)["v"] for x in (0, "", None, "k")]
    check("pk 0 / '' / null / 'k' are distinct partitions", vals == ["zero", "empty", "null", "k"],
          str(vals))

    # hierarchical
    h.upsert_item({"id": "x", "tenant": "t1", "pk": "a", "v": 1})
    h.upsert_item({"id": "x", "tenant": "t1", "pk": "b", "v": 2})
    h.upsert_item({"id": "x", "tenant": "t2", "pk": "a", "v": 3})
    vals = [h.read_item("x", partition_key=k)["v"] for k in (["t1", "a"], ["t1", "b"], ["t2", "a"])]
    check("hierarchical: same id under 3 full keys kept apart", vals == [1, 2, 3], str(vals))
    expect_error("hierarchical: read missing -> 404",
                 lambda: h.read_item("x", partition_key=["t1", "c"]),
                 exceptions.CosmosResourceNotFoundError, 404)
    rr = h.replace_item("x", {"id": "x", "tenant": "t1", "pk": "b", "v": 20},
                        etag=h.read_item("x", partition_key=["t1", "b"])["_etag"],
                        match_condition=MatchConditions.IfNotModified)
    check("hierarchical: replace with etag", rr["v"] == 20
          and h.read_item("x", partition_key=["t1", "a"])["v"] == 1)
    h.delete_item("x", partition_key=["t1", "a"])
    check("hierarchical: delete one key leaves the others",
          h.read_item("x", partition_key=["t1", "b"])["v"] == 20
          and h.read_item("x", partition_key=["t2", "a"])["v"] == 3)
    q = list(h.query_items("SELECT * FROM c WHERE c.tenant = 't1'", partition_key=["t1"]))
    check("hierarchical: prefix-key query", len(q) == 1, f"{len(q)} item(s)")

    # queries
    q = db.create_container_if_not_exists("q", partition_key=PartitionKey(path="/pk"))
    for i in range(250):
        q.upsert_item({"id": f"i{i:04d}", "pk": f"p{i % 7}", "n": i, "tags": ["t", f"g{i % 3}"]})
    pager = q.query_items("SELECT * FROM c", enable_cross_partition_query=True,
                          max_item_count=37).by_page()
    ids, pages = [], 0
    for page in pager:
        pages += 1
        ids.extend(d["id"] for d in page)
    check("cross-partition query with continuation returns all",
          sorted(ids) == sorted(f"i{i:04d}" for i in range(250)), f"{len(ids)} items, {pages} pages")
    cnt = list(q.query_items("SELECT VALUE COUNT(1) FROM c", enable_cross_partition_query=True))
    check("COUNT", cnt == [250], str(cnt))
    s = list(q.query_items("SELECT VALUE SUM(c.n) FROM c WHERE c.pk = 'p0'", partition_key="p0"))
    check("SUM single partition", s == [sum(i for i in range(250) if i % 7 == 0)], str(s))
    o = list(q.query_items("SELECT TOP 5 c.n FROM c ORDER BY c.n DESC",
                           enable_cross_partition_query=True))
    check("TOP + ORDER BY", [x["n"] for x in o] == [249, 248, 247, 246, 245])
    o = [d["n"] for d in q.query_items("SELECT c.n FROM c WHERE c.n >= @lo ORDER BY c.n",
                                       parameters=[{"name": "@lo", "value": 200}],
                                       enable_cross_partition_query=True, max_item_count=9)]
    check("WHERE + ORDER BY + parameters + paging", o == list(range(200, 250)))
    j = list(q.query_items("SELECT c.id, t FROM c JOIN t IN c.tags WHERE t = 'g1'",
                           enable_cross_partition_query=True))
    check("JOIN", len(j) == len([i for i in range(250) if i % 3 == 1]))
    o = [d["n"] for d in q.query_items("SELECT c.n FROM c ORDER BY c.n OFFSET 10 LIMIT 25",
                                       enable_cross_partition_query=True, max_item_count=10)]
    check("OFFSET/LIMIT (launcher rewrite), paged", o == list(range(10, 35)))
    dv = sorted(q.query_items("SELECT DISTINCT VALUE c.pk FROM c", enable_cross_partition_query=True))
    check("DISTINCT VALUE (launcher rewrite)", dv == [f"p{i}" for i in range(7)], str(dv))
    lk = list(q.query_items("SELECT VALUE c.id FROM c WHERE c.id LIKE 'i00_5'",
                            enable_cross_partition_query=True))
    check("LIKE (launcher rewrite)", sorted(lk) == [f"i00{d}5" for d in range(10)], str(lk))
    gb = sorted((r["pk"], r["n"], r["total"]) for r in q.query_items(
        "SELECT c.pk, COUNT(1) AS n, SUM(c.n) AS total FROM c GROUP BY c.pk",
        enable_cross_partition_query=True))
    want = sorted((f"p{k}", len(range(k, 250, 7)), sum(range(k, 250, 7))) for k in range(7))
    check("GROUP BY with COUNT/SUM (launcher rewrite)", gb == want, str(gb[:2]))
    rf = list(q.read_all_items(max_item_count=40))
    check("read_all_items (ReadFeed) with paging", len(rf) == 250)

    # change feed (latest version)
    cf = db.create_container_if_not_exists("cf", partition_key=PartitionKey(path="/pk"))
    for i in range(30):
        cf.upsert_item({"id": f"c{i}", "pk": f"p{i % 3}", "v": 0})
    got = [d["id"] for d in cf.query_items_change_feed(start_time="Beginning", max_item_count=7)]
    tok = cf.client_connection.last_response_headers.get("etag")
    check("change feed from beginning", sorted(got) == sorted(f"c{i}" for i in range(30)), f"{len(got)}")
    cf.upsert_item({"id": "c5", "pk": "p2", "v": 1})
    cf.upsert_item({"id": "new", "pk": "p0"})
    cf.delete_item("c1", partition_key="p1")
    got = [(d["id"], d.get("v")) for d in cf.query_items_change_feed(continuation=tok)]
    check("change feed from continuation: only the changes (deletes not reported)",
          got == [("c5", 1), ("new", None)], str(got))
    tok = cf.client_connection.last_response_headers.get("etag")
    check("change feed: nothing new -> empty", list(cf.query_items_change_feed(continuation=tok)) == [])
    pk_only = sorted(d["id"] for d in cf.query_items_change_feed(start_time="Beginning", partition_key="p2"))
    check("change feed scoped to a partition key",
          pk_only == sorted([f"c{i}" for i in range(30) if i % 3 == 2]), f"{len(pk_only)}")
    list(cf.query_items_change_feed(start_time="Now"))
    tok = cf.client_connection.last_response_headers.get("etag")
    cf.upsert_item({"id": "late", "pk": "p1"})
    got = [d["id"] for d in cf.query_items_change_feed(continuation=tok)]
    check("change feed from now", got == ["late"], str(got))

    # throughput (offers)
    t1 = db.create_container_if_not_exists("thr", partition_key=PartitionKey(path="/pk"),
                                           offer_throughput=1000)
    before = t1.get_throughput().offer_throughput
    t1.replace_throughput(2500)
    check("get/replace throughput", before == 1000 and t1.get_throughput().offer_throughput == 2500,
          f"{before} -> {t1.get_throughput().offer_throughput}")

    # container replace keeps items; TTL; delete by partition key; extra system functions
    m = db.create_container_if_not_exists("misc", partition_key=PartitionKey(path="/pk"))
    for i in range(6):
        m.upsert_item({"id": f"m{i}", "pk": f"p{i % 2}"})
    db.replace_container(m, partition_key=PartitionKey(path="/pk"), default_ttl=-1)
    check("replace_container keeps the items", len(list(m.read_all_items())) == 6)
    m.upsert_item({"id": "short", "pk": "p0", "ttl": 1})
    time.sleep(2.3)
    check("TTL: item with ttl=1 gone after ~2 s, others kept",
          sorted(d["id"] for d in m.read_all_items()) == [f"m{i}" for i in range(6)])
    m.delete_all_items_by_partition_key("p1")
    check("delete_all_items_by_partition_key",
          sorted(d["id"] for d in m.read_all_items()) == ["m0", "m2", "m4"])
    r = list(m.query_items("SELECT VALUE c.id FROM c WHERE StringEquals(c.id, 'M0', true)",
                           partition_key="p0"))
    check("StringEquals (added system function)", r == ["m0"], str(r))

    # transactional batch
    b = db.create_container_if_not_exists("batch", partition_key=PartitionKey(path="/pk"))
    b.upsert_item({"id": "r", "pk": "P", "n": 0})
    res = b.execute_item_batch([
        ("create", ({"id": "b1", "pk": "P"},)),
        ("upsert", ({"id": "b2", "pk": "P"},)),
        ("replace", ("r", {"id": "r", "pk": "P", "n": 1})),
        ("patch", ("r", [{"op": "incr", "path": "/n", "value": 5}])),
        ("read", ("b1",)),
    ], partition_key="P")
    check("batch (header partition key, create/upsert/replace/patch/read)",
          [x["statusCode"] for x in res] == [201, 201, 200, 200, 200]
          and b.read_item("r", partition_key="P")["n"] == 6,
          str([x["statusCode"] for x in res]))
    try:
        b.execute_item_batch([
            ("upsert", ({"id": "b3", "pk": "P"},)),
            ("delete", ("b2",)),
            ("replace", ("r", {"id": "r", "pk": "P", "n": 100})),
            ("create", ({"id": "b1", "pk": "P"},)),  # conflict -> whole batch rolls back
        ], partition_key="P")
        check("batch atomic rollback", False, "no error")
    except exceptions.CosmosBatchOperationError as ex:
        codes = [x["statusCode"] for x in ex.operation_responses]
        left = sorted(d["id"] for d in b.query_items("SELECT * FROM c", partition_key="P"))
        check("batch atomic rollback", codes == [424, 424, 424, 409]
              and left == ["b1", "b2", "r"] and b.read_item("r", partition_key="P")["n"] == 6,
              f"error_index={ex.error_index} codes={codes} items={left}")

    # fault injection (429)
    import urllib.error
    import urllib.request
    import ssl

    def faults(body: dict | None):
        req = urllib.request.Request(f"{url}_turnout/faults",
                                     data=json.dumps(body or {}).encode(),
                                     method="POST" if body else "DELETE")
        ctx = ssl._create_unverified_context() if url.startswith("https") else None
        return json.load(urllib.request.urlopen(req, context=ctx))

    faults({"status": 429, "count": 2, "retryAfterMs": 5, "path": "/docs"})
    hook = []
    c.upsert_item({"id": "t429", "pk": "p"}, response_hook=lambda hdr, _: hook.append(hdr))
    retries = None
    try:
        retries = json.loads(c.client_connection.last_response_headers.get(
            "x-ms-throttle-retry-count", "null"))
    except Exception:  # noqa: BLE001
        pass
    check("injected 429 x2: SDK retries and succeeds", True, f"throttle-retry-count={retries}")
    faults({"status": 429, "count": 1000, "retryAfterMs": 1, "path": "/docs"})
    c2 = CosmosClient(url, credential=KEY, retry_total=2, **client_kwargs(http))
    t0 = time.time()
    expect_error("injected persistent 429 -> CosmosHttpResponseError 429",
                 lambda: c2.get_database_client("verify").get_container_client("items")
                 .read_item("b", partition_key="p1"),
                 exceptions.CosmosHttpResponseError, 429)
    faults(None)
    print(f"      (persistent 429 surfaced after {time.time() - t0:.2f}s)")

    # endpoint discovery enabled (default) over either scheme
    c3 = CosmosClient(url, credential=KEY, **({} if http else {"connection_verify": False}))
    ok = c3.get_database_client("verify").get_container_client("items").read_item("b", partition_key="p1")
    check("default client (endpoint discovery on) works", ok["id"] == "b")

    # limits real Cosmos enforces
    big = {"id": "big", "pk": "p1", "blob": "x" * (2 * 1024 * 1024 + 10)}
    try:
        c.upsert_item(big)
        print("GAP   2 MB item limit NOT enforced: a 2.0 MiB+ item was stored (real Cosmos: 413 RequestEntityTooLarge)")
    except exceptions.CosmosHttpResponseError as ex:
        print(f"INFO  2 MB item limit: HTTP {ex.status_code}")
    bigger = {"id": "big2", "pk": "p1", "blob": "x" * (8 * 1024 * 1024)}
    try:
        c.upsert_item(bigger)
        print("GAP   8 MiB item also stored")
    except exceptions.CosmosHttpResponseError as ex:
        print(f"INFO  8 MiB item: HTTP {ex.status_code}")
    for bad in ("a/b", "a\\b", "a?b", "a#b"):
        try:
            c.create_item({"id": bad, "pk": "ids"})
            print(f"INFO  id {bad!r}: SDK sent it")
        except ValueError as ex:
            print(f"INFO  id {bad!r}: the Python SDK refuses it client-side (ValueError: {ex})")
        except exceptions.CosmosHttpResponseError as ex:
            print(f"INFO  id {bad!r}: create rejected HTTP {ex.status_code}")
        # what the server itself does, bypassing the SDK's check: raw REST create
        req = urllib.request.Request(f"{url}dbs/verify/colls/items/docs",
                                     data=json.dumps({"id": bad, "pk": "ids"}).encode(),
                                     headers={"x-ms-documentdb-partitionkey": '["ids"]',
                                              "content-type": "application/json"}, method="POST")
        ctx = ssl._create_unverified_context() if url.startswith("https") else None
        try:
            st = urllib.request.urlopen(req, context=ctx).status
        except urllib.error.HTTPError as ex:
            st = ex.code
        stored = [d["id"] for d in c.query_items("SELECT * FROM c WHERE c.id = @i",
                                                 parameters=[{"name": "@i", "value": bad}],
                                                 partition_key="ids")]
        print(f"{'GAP ' if st < 300 else 'INFO'}  id {bad!r}: server answers raw REST create with HTTP {st}"
              f"{' (real Cosmos rejects it)' if st < 300 else ''}; stored: {bool(stored)}")
    client.delete_database("verify")


async def functional_async(url: str, http: bool) -> None:
    async with AsyncCosmosClient(url, credential=KEY, **client_kwargs(http)) as client:
        db = await client.create_database_if_not_exists("verify_aio")
        c = await db.create_container_if_not_exists("items", partition_key=PartitionKey(path="/pk"))
        h = await db.create_container_if_not_exists(
            "hier", partition_key=PartitionKey(path=["/tenant", "/pk"], kind="MultiHash"))
        r = await c.upsert_item({"id": "a", "pk": "p", "n": 1})
        await c.replace_item("a", {"id": "a", "pk": "p", "n": 2}, etag=r["_etag"],
                             match_condition=MatchConditions.IfNotModified)
        try:
            await c.replace_item("a", {"id": "a", "pk": "p", "n": 3}, etag=r["_etag"],
                                 match_condition=MatchConditions.IfNotModified)
            check("aio: replace wrong etag -> 412", False, "no error")
        except exceptions.CosmosAccessConditionFailedError as ex:
            check("aio: replace wrong etag -> 412", ex.status_code == 412)
        check("aio: upsert/replace/read", (await c.read_item("a", partition_key="p"))["n"] == 2)
        await c.delete_item("a", partition_key="p")
        try:
            await c.read_item("a", partition_key="p")
            check("aio: read missing -> 404", False, "no error")
        except exceptions.CosmosResourceNotFoundError as ex:
            check("aio: read missing -> CosmosResourceNotFoundError 404", ex.status_code == 404)
        await h.upsert_item({"id": "x", "tenant": "t", "pk": "a"})
        await h.upsert_item({"id": "x", "tenant": "t", "pk": "b"})
        check("aio: hierarchical read", (await h.read_item("x", partition_key=["t", "b"]))["pk"] == "b")
        await asyncio.gather(*(c.upsert_item({"id": f"i{i}", "pk": f"p{i % 5}"}) for i in range(120)))
        ids = [d["id"] async for d in c.query_items("SELECT c.id FROM c", max_item_count=25)]
        check("aio: cross-partition query with continuation", len(ids) == 120, f"{len(ids)}")
        n = [x async for x in c.query_items("SELECT VALUE COUNT(1) FROM c")]
        check("aio: COUNT", n == [120], str(n))
        got = [d["id"] async for d in c.query_items_change_feed(start_time="Beginning")]
        tok = c.client_connection.last_response_headers.get("etag")
        await c.upsert_item({"id": "i7", "pk": "p2", "x": 1})
        got2 = [d["id"] async for d in c.query_items_change_feed(continuation=tok)]
        check("aio: change feed", len(got) == 120 and got2 == ["i7"], f"{len(got)} then {got2}")
        res = await c.execute_item_batch([("create", ({"id": "bb", "pk": "p0"},)),
                                          ("upsert", ({"id": "i0", "pk": "p0", "y": 1},))],
                                         partition_key="p0")
        check("aio: batch", [r["statusCode"] for r in res] == [201, 200])
        await client.delete_database("verify_aio")


def perf(url: str, http: bool, items: int) -> None:
    client = CosmosClient(url, credential=KEY, **client_kwargs(http))
    db = client.create_database_if_not_exists("perf")
    c = db.create_container_if_not_exists("sync", partition_key=PartitionKey(path="/pk"))
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        c.upsert_item({"id": f"s{i}", "pk": f"p{i % 50}", "n": i, "pad": "x" * 200})
    dt = time.perf_counter() - t0
    print(f"PERF  sync upserts, 1 client: {n / dt:.0f}/s ({n} in {dt:.2f}s)")
    t0 = time.perf_counter()
    for i in range(n):
        c.read_item(f"s{i}", partition_key=f"p{i % 50}")
    dt = time.perf_counter() - t0
    print(f"PERF  sync point reads, 1 client: {n / dt:.0f}/s")

    async def load(container_name: str, total: int, conc: int = 32) -> float:
        async with AsyncCosmosClient(url, credential=KEY, **client_kwargs(http)) as ac:
            adb = ac.get_database_client("perf")
            await adb.create_container_if_not_exists(container_name,
                                                     partition_key=PartitionKey(path="/pk"))
            ct = adb.get_container_client(container_name)
            nxt = iter(range(total))

            async def worker():
                for i in nxt:
                    await ct.upsert_item({"id": f"a{i}", "pk": f"p{i % 100}", "n": i,
                                          "pad": "x" * 200})
            t = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            return time.perf_counter() - t

    dt = asyncio.run(load("async", 5000))
    print(f"PERF  async upserts, concurrency 32: {5000 / dt:.0f}/s (5000 in {dt:.2f}s)")

    # bulk container: the async figure above continues while loading
    for size in sorted({20000, items}):
        name = f"big{size}"
        dt = asyncio.run(load(name, size))
        print(f"PERF  load {size} items (async, conc 32): {size / dt:.0f}/s")
        ct = db.get_container_client(name)
        t0 = time.perf_counter()
        cnt = list(ct.query_items("SELECT VALUE COUNT(1) FROM c", enable_cross_partition_query=True))
        print(f"PERF  {size} items: SELECT VALUE COUNT(1) -> {cnt} in {time.perf_counter() - t0:.2f}s")
        t0 = time.perf_counter()
        s = list(ct.query_items("SELECT VALUE SUM(c.n) FROM c WHERE c.n % 2 = 0",
                                enable_cross_partition_query=True))
        print(f"PERF  {size} items: SUM with WHERE -> {s} in {time.perf_counter() - t0:.2f}s")
        for mic in (None, 1000, 100):
            t0 = time.perf_counter()
            pages = got = 0
            for page in ct.query_items("SELECT * FROM c", enable_cross_partition_query=True,
                                       max_item_count=mic).by_page():
                pages += 1
                got += sum(1 for _ in page)
            print(f"PERF  {size} items: full query read, max_item_count={mic}: {got} items, "
                  f"{pages} pages in {time.perf_counter() - t0:.2f}s")
            check(f"full read {size} (max_item_count={mic}) complete", got == size)
        t0 = time.perf_counter()
        got = sum(1 for _ in ct.query_items("SELECT * FROM c WHERE c.pk = 'p7' ORDER BY c.n DESC",
                                            partition_key="p7", max_item_count=50))
        print(f"PERF  {size} items: single-partition ORDER BY, paged by 50: {got} items in "
              f"{time.perf_counter() - t0:.2f}s")
    client.delete_database("perf")


def main() -> int:
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--http", action="store_true")
    g.add_argument("--https", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--skip-perf", action="store_true")
    a = ap.parse_args()
    http = a.http
    port = a.port or free_port()
    proc = start_server(port, http)
    url = f"{'http' if http else 'https'}://127.0.0.1:{port}/"
    print(f"server: {url} (pid {proc.pid})", flush=True)
    try:
        functional_sync(url, http)
        asyncio.run(functional_async(url, http))
        if not a.skip_perf:
            perf(url, http, a.items)
    finally:
        proc.terminate()
        proc.wait(10)
    failed = [r for r in RESULTS if not r[1]]
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
