"""A relational workload for the MySQL → DynamoDB route: a shop schema (customers, orders, order lines) with
every type the route maps, a seeder, and a live writer doing inserts, updates (key-changing ones included:
an order moves to another customer or date) and deletes while a migration runs.

Used by the tests, `make demo ROUTE=mysql-dynamodb` and the benchmark.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from decimal import Decimal

import pymysql

import workload

SCHEMA = [
    """CREATE TABLE customers (
  customer_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  email VARCHAR(191) NOT NULL,
  name VARCHAR(200) NOT NULL,
  tier ENUM('free','pro','enterprise') NOT NULL DEFAULT 'free',
  flags SET('beta','vip','churn_risk') NOT NULL DEFAULT '',
  balance DECIMAL(20,4) NOT NULL DEFAULT 0,
  profile JSON NULL,
  avatar BLOB NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  birthday DATE NULL,
  password_hash VARBINARY(32) NULL
) ENGINE=InnoDB""",
    """CREATE TABLE orders (
  order_id BIGINT NOT NULL PRIMARY KEY,
  customer_id BIGINT UNSIGNED NOT NULL,
  order_date DATE NOT NULL,
  status VARCHAR(20) NOT NULL,
  total DECIMAL(38,10) NOT NULL,
  note TEXT NULL,
  score FLOAT NULL,
  weight DOUBLE NULL,
  KEY by_customer (customer_id)
) ENGINE=InnoDB""",
    """CREATE TABLE order_lines (
  order_id BIGINT NOT NULL,
  line_no INT NOT NULL,
  sku VARCHAR(40) NOT NULL,
  qty INT NOT NULL,
  price DECIMAL(12,2) NOT NULL,
  ship_time TIME NULL,
  PRIMARY KEY (order_id, line_no)
) ENGINE=InnoDB""",
]

TABLES = ("customers", "orders", "order_lines")

def connect(ep: dict, database: str | None = None):
    return pymysql.connect(host=ep["host"], port=int(ep["port"]), user=ep["user"], password=ep["password"],
                           database=database, autocommit=True, charset="utf8mb4",
                           init_command="SET time_zone = '+00:00'")


def create_database(ep: dict, database: str) -> None:
    c = connect(ep)
    with c.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{database}`")
        for ddl in SCHEMA:
            cur.execute(ddl)
    c.close()


def _customer(rng: random.Random, cid: int) -> tuple:
    profile = None if rng.random() < 0.2 else json.dumps({
        "lang": rng.choice(["en", "de", "ja", "pt-BR"]), "score": round(rng.uniform(0, 100), 3),
        "tags": rng.sample(["a", "b", "c", "d"], rng.randint(0, 3)), "nested": {"n": rng.randint(-5, 5), "ok": True,
                                                                               "none": None}})
    return (
        cid, f"user{cid}@example.com", rng.choice(["Ada Lovelace", "Grace Hopper", "Émile Zola", "宮崎 駿"]) + f" {cid}",
        rng.choice(["free", "pro", "enterprise"]), ",".join(sorted(rng.sample(["beta", "vip", "churn_risk"],
                                                                              rng.randint(0, 2)))),
        Decimal(rng.randint(-10**9, 10**9)) / 10000, profile,
        None if rng.random() < 0.5 else bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))),
        dt.datetime(2020, 1, 1) + dt.timedelta(seconds=rng.randint(0, 10**8), microseconds=rng.randint(0, 999999)),
        dt.datetime(2024, 1, 1) + dt.timedelta(seconds=rng.randint(0, 10**7), microseconds=rng.randint(0, 999) * 1000),
        None if rng.random() < 0.3 else dt.date(1950, 1, 1) + dt.timedelta(days=rng.randint(0, 25000)),
        bytes(rng.randrange(256) for _ in range(32)),
    )


def _order(rng: random.Random, oid: int, customers: int) -> tuple:
    return (oid, rng.randint(1, customers), dt.date(2023, 1, 1) + dt.timedelta(days=rng.randint(0, 700)),
            rng.choice(["NEW", "PAID", "SHIPPED", "DONE"]),
            Decimal(rng.randint(0, 10**15)) / Decimal(10**10) + Decimal("12345678901234567890"),
            None if rng.random() < 0.5 else "note " * rng.randint(1, 20),
            None if rng.random() < 0.3 else rng.uniform(-1000, 1000), rng.uniform(0, 100))


def _line(rng: random.Random, oid: int, n: int) -> tuple:
    return (oid, n, f"SKU-{rng.randint(1, 5000):05d}", rng.randint(1, 9), Decimal(rng.randint(1, 99999)) / 100,
            None if rng.random() < 0.5 else dt.timedelta(hours=rng.randint(0, 23), minutes=rng.randint(0, 59),
                                                         seconds=rng.randint(0, 59)))


C_SQL = ("REPLACE INTO customers (customer_id, email, name, tier, flags, balance, profile, avatar, created_at, "
         "updated_at, birthday, password_hash) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)")
O_SQL = ("REPLACE INTO orders (order_id, customer_id, order_date, status, total, note, score, weight) "
         "VALUES (%s,%s,%s,%s,%s,%s,%s,%s)")
L_SQL = "REPLACE INTO order_lines (order_id, line_no, sku, qty, price, ship_time) VALUES (%s,%s,%s,%s,%s,%s)"


def seed(ep: dict, database: str, customers: int, orders_per_customer: int = 3, lines_per_order: int = 2,
         seed: int = 7) -> int:
    """Insert the rows; returns the number of rows."""
    rng = random.Random(seed)
    c = connect(ep, database)
    n = 0
    with c.cursor() as cur:
        for start in range(1, customers + 1, 1000):
            rows = [_customer(rng, i) for i in range(start, min(start + 1000, customers + 1))]
            cur.executemany(C_SQL, rows)
            n += len(rows)
        orders = customers * orders_per_customer
        for start in range(1, orders + 1, 2000):
            rows = [_order(rng, i, customers) for i in range(start, min(start + 2000, orders + 1))]
            cur.executemany(O_SQL, rows)
            lines = [_line(rng, o[0], k) for o in rows for k in range(1, lines_per_order + 1)]
            cur.executemany(L_SQL, lines)
            n += len(rows) + len(lines)
    c.close()
    return n


class LiveWriter(threading.Thread):
    """Mixed writes at a target rate until stopped: new customers/orders/lines, non-key updates, key-changing
    updates (order moved to another customer or date), deletes of orders (with their lines) and of lines.
    Some statements run in multi-statement transactions."""

    def __init__(self, ep: dict, database: str, customers: int, rate: float = 50, seed: int = 11):
        super().__init__(daemon=True)
        self.ep, self.database, self.rate = ep, database, rate
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.counts = {"insert": 0, "update": 0, "key_change": 0, "delete": 0, "txn": 0}
        self.customers = customers
        self.errors: list[str] = []

    def stop(self) -> dict:
        self.stop_event.set()
        self.join(300)
        if self.is_alive():  # a write after the freeze would be a difference nobody made: say so, loudly
            raise RuntimeError(f"the live writer did not stop within 300 s: {dict(self.counts)}")
        return dict(self.counts)

    def run(self) -> None:
        c = connect(self.ep, self.database)
        rng = self.rng
        with c.cursor() as cur:
            cur.execute("SELECT COALESCE(MAX(order_id), 0), COALESCE(MAX(customer_id), 0) FROM orders")
            next_order, _ = cur.fetchone()
            next_order += 1
            next_customer = self.customers + 1
            t0, n = time.monotonic(), 0
            while not self.stop_event.is_set():
                try:
                    self._one(cur, rng, next_order, next_customer)
                except pymysql.MySQLError as exc:  # a deadlock, say: counted, the writer goes on
                    self.errors.append(str(exc))
                next_order += 1
                next_customer += 1 if rng.random() < 0.1 else 0
                n += 1
                workload.pace(t0, n, self.rate)
        c.close()

    def _pick_order(self, cur, rng) -> int | None:
        cur.execute("SELECT order_id FROM orders WHERE order_id >= %s ORDER BY order_id LIMIT 1",
                    (rng.randint(1, max(1, self._max_order(cur))),))
        r = cur.fetchone()
        return r[0] if r else None

    def _max_order(self, cur) -> int:
        cur.execute("SELECT COALESCE(MAX(order_id), 1) FROM orders")
        return cur.fetchone()[0]

    def _one(self, cur, rng, next_order: int, next_customer: int) -> None:
        r = rng.random()
        if r < 0.25:  # new order with lines, in one transaction (new customer now and then)
            cur.execute("BEGIN")
            if rng.random() < 0.3:
                cur.execute(C_SQL, _customer(rng, next_customer))
                self.customers = max(self.customers, next_customer)
            o = _order(rng, next_order, self.customers)
            cur.execute(O_SQL.replace("REPLACE", "INSERT"), o)
            cur.executemany(L_SQL, [_line(rng, next_order, k) for k in range(1, rng.randint(1, 4) + 1)])
            cur.execute("COMMIT")
            self.counts["insert"] += 1
            self.counts["txn"] += 1
        elif r < 0.50:  # non-key update
            oid = self._pick_order(cur, rng)
            if oid:
                cur.execute("UPDATE orders SET status=%s, note=%s, score=%s WHERE order_id=%s",
                            (rng.choice(["PAID", "SHIPPED", "DONE", "RETURNED"]), f"upd {time.time()}",
                             rng.uniform(-5, 5), oid))
                self.counts["update"] += 1
        elif r < 0.62:  # key-changing update: the order moves to another customer or another date
            oid = self._pick_order(cur, rng)
            if oid:
                if rng.random() < 0.5:
                    cur.execute("UPDATE orders SET customer_id=%s WHERE order_id=%s",
                                (rng.randint(1, self.customers), oid))
                else:
                    cur.execute("UPDATE orders SET order_date = order_date + INTERVAL %s DAY WHERE order_id=%s",
                                (rng.randint(1, 30), oid))
                self.counts["key_change"] += 1
        elif r < 0.72:  # customer updates (email feeds a computed GSI attribute; JSON; SET)
            cid = rng.randint(1, self.customers)
            cur.execute("UPDATE customers SET email=%s, flags=%s, balance=balance+%s, profile=%s WHERE customer_id=%s",
                        (f"changed{cid}.{rng.randint(0, 999)}@example.com", rng.choice(["", "vip", "beta,vip"]),
                         Decimal(rng.randint(-999, 999)) / 100, json.dumps({"v": rng.randint(0, 9)}), cid))
            self.counts["update"] += 1
        elif r < 0.80:  # line updates
            oid = self._pick_order(cur, rng)
            if oid:
                cur.execute("UPDATE order_lines SET qty=qty+1, ship_time=%s WHERE order_id=%s",
                            (dt.timedelta(seconds=rng.randint(0, 86399)), oid))
                self.counts["update"] += 1
        elif r < 0.92:  # delete an order and its lines (one transaction)
            oid = self._pick_order(cur, rng)
            if oid:
                cur.execute("BEGIN")
                cur.execute("DELETE FROM order_lines WHERE order_id=%s", (oid,))
                cur.execute("DELETE FROM orders WHERE order_id=%s", (oid,))
                cur.execute("COMMIT")
                self.counts["delete"] += 1
                self.counts["txn"] += 1
        else:  # delete one line
            oid = self._pick_order(cur, rng)
            if oid:
                cur.execute("DELETE FROM order_lines WHERE order_id=%s ORDER BY line_no DESC LIMIT 1", (oid,))
                self.counts["delete"] += 1


def row_count(ep: dict, database: str) -> dict:
    c = connect(ep, database)
    out = {}
    with c.cursor() as cur:
        for t in TABLES:
            cur.execute(f"SELECT COUNT(*) FROM `{t}`")
            out[t] = cur.fetchone()[0]
    c.close()
    return out


def full_compare(ep: dict, database: str, ddb_endpoint: str, table: str) -> dict:
    """Independent check of the demo's key redesign (hand-written here, not the engine's templates): the set of
    target keys equals what every source row should produce, and each item's business fields match."""
    from decimal import Context
    from decimal import Decimal as D

    exact = Context(prec=100)

    def num(x):
        return str(D(x).normalize(exact))

    want = {}
    c = connect(ep, database)
    with c.cursor() as cur:
        cur.execute("SELECT customer_id, email, name, balance FROM customers")
        for cid, email, name, bal in cur.fetchall():
            want[f"CUSTOMER#{cid}|PROFILE"] = {"entity": "customer", "email": email, "full_name": name,
                                                "balance": num(bal), "GSI1PK": f"EMAIL#{email}"}
        cur.execute("SELECT order_id, customer_id, order_date, status, total FROM orders")
        for oid, cid, day, status, total in cur.fetchall():
            want[f"CUSTOMER#{cid}|ORDER#{day.isoformat()}#{oid:012d}"] = {
                "entity": "order", "status": status, "total": num(total), "GSI1PK": f"STATUS#{status}",
                "GSI1SK": f"{day.isoformat()}#{oid:012d}"}
        cur.execute("SELECT order_id, line_no, sku, qty, price FROM order_lines")
        for oid, n, sku, qty, price in cur.fetchall():
            want[f"ORDER#{oid:012d}|LINE#{n:04d}"] = {"entity": "order_line", "sku": sku, "qty": num(qty),
                                                       "price": num(price)}
    c.close()
    have = {}
    for it in workload.scan_all(ddb_endpoint, table):
        k = f"{it['PK']['S']}|{it['SK']['S']}"
        fields = want.get(k, {})
        have[k] = {f: (it[f].get("S") if "S" in it[f] else num(it[f]["N"])) for f in fields if f in it}
    canon = {k: json.dumps(v, sort_keys=True) for k, v in want.items()}
    return workload._diff(canon, {k: json.dumps(v, sort_keys=True) for k, v in have.items()})
