"""A DynamoDB-API proxy for the test stack: real round-trip latency and a provisioned-capacity budget in front of
DynamoDB Local (127.0.0.1 only), so throttling and latency are tested against a real server path, not stubs.

    python scripts/throttle_proxy.py --upstream http://127.0.0.1:8000 --port 8100 [--latency-ms 20] [--wcu 500] [--rcu 0]

- **Latency**: every request waits ``latency_ms`` before it is forwarded (the added round trip of a cross-region
  or cross-cloud hop); requests are served concurrently, so a client that keeps many in flight hides it.
- **Capacity**: DynamoDB's own units, counted here from the request and the response, independently of Turnout:
  a write costs 1 WCU per started KB of each item written (a delete: 1), a read 1 RCU per started 4 KB of what
  it returned (half for an eventually consistent read; a Scan/Query sums its items' sizes first). Beyond the
  budget of a second (a token bucket refilled at ``wcu``/``rcu`` per second, holding at most one second's worth)
  the proxy answers ``ProvisionedThroughputExceededException`` (HTTP 400), as DynamoDB does, and forwards nothing.
  0 = no limit.
- **What it admitted**: ``GET /_proxy/stats`` gives the units admitted and the requests throttled, in total and
  per second; ``POST /_proxy/config`` with ``{"latency_ms":…, "wcu":…, "rcu":…}`` changes them while it runs;
  ``POST /_proxy/reset`` zeroes the counters.

Standard library only. Item sizes follow DynamoDB's documented rules (attribute name length + value size: a
string its UTF-8 length, a number about one byte per two digits plus one, binary its length, a list or map 3
bytes plus its members, a boolean or null 1 byte).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

THROTTLED = {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
             "message": "The level of configured provisioned throughput for the table was exceeded (throttle proxy)"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
READS = {"GetItem", "BatchGetItem", "Scan", "Query", "TransactGetItems"}


def value_size(v: dict) -> int:
    (t, x), = v.items()
    if t == "S":
        return len(x.encode())
    if t == "N":
        digits = x.lstrip("-").replace(".", "").lstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if t == "B":
        return len(base64.b64decode(x))
    if t in ("BOOL", "NULL"):
        return 1
    if t == "SS":
        return sum(len(s.encode()) for s in x)
    if t == "NS":
        return sum(value_size({"N": n}) for n in x)
    if t == "BS":
        return sum(len(base64.b64decode(b)) for b in x)
    if t == "L":
        return 3 + sum(value_size(e) + 1 for e in x)
    if t == "M":
        return 3 + sum(len(k.encode()) + value_size(e) + 1 for k, e in x.items())
    raise ValueError(f"unknown DynamoDB type {t!r}")


def item_size(item: dict) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def write_units(op: str, body: dict) -> float:
    """WCU a write request costs: 1 per started KB of each item put, 1 per delete (DynamoDB's rule)."""
    if op == "BatchWriteItem":
        total = 0
        for reqs in (body.get("RequestItems") or {}).values():
            for r in reqs:
                total += math.ceil(item_size(r["PutRequest"]["Item"]) / 1024) if "PutRequest" in r else 1
        return float(total)
    if op == "PutItem":
        return float(max(1, math.ceil(item_size(body.get("Item") or {}) / 1024)))
    if op == "TransactWriteItems":
        return 2.0 * len(body.get("TransactItems") or [])
    return 1.0  # DeleteItem, UpdateItem: at least one unit (the item's size is not known before)


def read_units(op: str, body: dict, answer: dict) -> float:
    """RCU a read cost, from what it returned: 1 per started 4 KB (0.5 when eventually consistent)."""
    factor = 1.0 if body.get("ConsistentRead") else 0.5
    if op in ("Scan", "Query"):
        size = sum(item_size(i) for i in answer.get("Items") or [])
        return max(factor, math.ceil(size / 4096) * factor)
    if op == "GetItem":
        return max(factor, math.ceil(item_size(answer.get("Item") or {}) / 4096) * factor)
    if op == "BatchGetItem":
        items = [i for rows in (answer.get("Responses") or {}).values() for i in rows]
        return max(factor, sum(math.ceil(item_size(i) / 4096) * factor for i in items))
    return 1.0


class Bucket:
    """Units per second, at most one second's worth saved; may go into debt (a read is charged after it ran)."""

    def __init__(self, rate: float):
        self.rate, self.tokens, self.last = float(rate), float(rate), time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def admit(self, n: float) -> bool:
        if self.rate <= 0:
            return True
        self._refill()
        if self.tokens >= min(n, self.rate) and self.tokens > 0:
            self.tokens -= n
            return True
        return False

    def open(self) -> bool:
        """A read is let in while the bucket is not in debt; what it cost is charged once it has run."""
        if self.rate <= 0:
            return True
        self._refill()
        return self.tokens > 0

    def charge(self, n: float) -> None:
        if self.rate > 0:
            self._refill()
            self.tokens -= n


class Proxy:
    def __init__(self, upstream: str, latency_ms: float = 0.0, wcu: float = 0.0, rcu: float = 0.0):
        u = urllib.parse.urlparse(upstream)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.lock = threading.Lock()
        self.local = threading.local()
        self.configure(latency_ms=latency_ms, wcu=wcu, rcu=rcu)
        self.reset()

    def configure(self, **cfg: Any) -> dict:
        with self.lock:
            self.latency_ms = float(cfg.get("latency_ms", getattr(self, "latency_ms", 0.0)))
            self.wcu = float(cfg.get("wcu", getattr(self, "wcu", 0.0)))
            self.rcu = float(cfg.get("rcu", getattr(self, "rcu", 0.0)))
            self.writes, self.reads = Bucket(self.wcu), Bucket(self.rcu)
        return self.config()

    def config(self) -> dict:
        return {"latency_ms": self.latency_ms, "wcu": self.wcu, "rcu": self.rcu}

    def reset(self) -> None:
        with self.lock:
            self.started = time.time()
            self.totals = {"requests": 0, "throttled": 0, "wcu": 0.0, "rcu": 0.0}
            self.seconds: dict[int, dict] = {}

    def _count(self, key: str, n: float = 1) -> None:
        sec = int(time.time())
        self.totals[key] += n
        row = self.seconds.setdefault(sec, {"requests": 0, "throttled": 0, "wcu": 0.0, "rcu": 0.0})
        row[key] += n
        if len(self.seconds) > 3600:
            self.seconds.pop(min(self.seconds))

    def stats(self) -> dict:
        with self.lock:
            return {**self.config(), "since": self.started, "totals": dict(self.totals),
                    "per_second": {str(k): dict(v) for k, v in sorted(self.seconds.items())}}

    def upstream(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        return conn

    def forward(self, path: str, headers: dict, data: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (0, 1):  # a kept-alive connection the server closed is opened again once
            conn = self.upstream()
            try:
                conn.request("POST", path, body=data, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (http.client.HTTPException, ConnectionError, OSError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def handle(self, op: str, path: str, headers: dict, data: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)
        body = json.loads(data or b"{}")
        with self.lock:
            self._count("requests")
            if op in WRITES:
                units = write_units(op, body)
                ok = self.writes.admit(units)
            elif op in READS:
                units, ok = 0.0, self.reads.open()  # charged once, with what it returned
            else:
                units, ok = 0.0, True
            if not ok:
                self._count("throttled")
                return 400, [("Content-Type", "application/x-amz-json-1.0")], json.dumps(THROTTLED).encode()
            if op in WRITES:
                self._count("wcu", units)
        status, resp_headers, out = self.forward(path, headers, data)
        if op in READS and status == 200:
            units = read_units(op, body, json.loads(out or b"{}"))
            with self.lock:
                self.reads.charge(units)
                self._count("rcu", units)
        return status, resp_headers, out


def make_handler(proxy: Proxy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: without it, a delayed ACK each

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, doc: dict) -> None:
            self._send(200, [("Content-Type", "application/json")], json.dumps(doc).encode())

        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path.startswith("/_proxy/stats"):
                return self._json(proxy.stats())
            return self._send(404, [], b"")

        def do_POST(self):  # noqa: N802
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/_proxy/config"):
                return self._json(proxy.configure(**json.loads(data or b"{}")))
            if self.path.startswith("/_proxy/reset"):
                proxy.reset()
                return self._json(proxy.stats())
            op = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            try:
                self._send(*proxy.handle(op, self.path, headers, data))
            except Exception as exc:  # noqa: BLE001 - the client sees a server error, the proxy goes on
                self._send(500, [("Content-Type", "text/plain")], f"throttle proxy: {exc}".encode())

        def log_message(self, *a):
            pass

    return Handler


def serve(upstream: str, port: int, latency_ms: float = 0.0, wcu: float = 0.0, rcu: float = 0.0) -> ThreadingHTTPServer:
    proxy = Proxy(upstream, latency_ms, wcu, rcu)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(proxy))
    server.daemon_threads = True
    server.proxy = proxy  # type: ignore[attr-defined]
    return server


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="the DynamoDB-API endpoint behind the proxy")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--wcu", type=float, default=0.0, help="write capacity units per second (0 = unlimited)")
    ap.add_argument("--rcu", type=float, default=0.0, help="read capacity units per second (0 = unlimited)")
    a = ap.parse_args(argv)
    serve(a.upstream, a.port, a.latency_ms, a.wcu, a.rcu).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
