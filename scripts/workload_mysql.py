"""A relational workload for the MySQL → DynamoDB route: a shop schema (customers, orders, order lines) with
every type the route maps, a seeder, and a live writer doing inserts, updates (key-changing ones included:
an order moves to another customer or date) and deletes while a migration runs.

Used by the tests, `make demo ROUTE=mysql-dynamodb` and the benchmark.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from decimal import Context, Decimal

import pymysql

import workload
import workload_base

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
  shipped_at DATETIME NULL,
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
            None if rng.random() < 0.3 else rng.uniform(-1000, 1000), rng.uniform(0, 100),
            None if rng.random() < 0.5 else dt.datetime(2023, 1, 1) + dt.timedelta(seconds=rng.randint(0, 6 * 10**7)))


def _line(rng: random.Random, oid: int, n: int) -> tuple:
    return (oid, n, f"SKU-{rng.randint(1, 5000):05d}", rng.randint(1, 9), Decimal(rng.randint(1, 99999)) / 100,
            None if rng.random() < 0.5 else dt.timedelta(hours=rng.randint(0, 23), minutes=rng.randint(0, 59),
                                                         seconds=rng.randint(0, 59)))


C_SQL = ("REPLACE INTO customers (customer_id, email, name, tier, flags, balance, profile, avatar, created_at, "
         "updated_at, birthday, password_hash) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)")
O_SQL = ("REPLACE INTO orders (order_id, customer_id, order_date, status, total, note, score, weight, shipped_at) "
         "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)")
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


class LiveWriter(workload_base.LiveWriterBase):
    """Mixed writes at a target rate until stopped: new customers/orders/lines, non-key updates, key-changing
    updates (order moved to another customer or date), deletes of orders (with their lines) and of lines.
    Some statements run in multi-statement transactions."""

    kinds = ("insert", "update", "key_change", "delete", "txn")
    transient = (pymysql.MySQLError,)  # a deadlock, say: counted (the transaction rolled back), the writer goes on

    def __init__(self, ep: dict, database: str, customers: int, rate: float = 50, seed: int = 11):
        super().__init__(rate, seed)
        self.ep, self.database = ep, database
        self.customers = customers
        self.conn = self.cur = None
        self.leave: set[int] = set()  # customers whose row the writer no longer updates (a test damages them)
        self.touched: set[int] = set()

    def leaves_customer(self, cid: int) -> bool:
        """From now on the writer leaves customer ``cid``'s row alone; False if it has updated it already."""
        self.leave.add(cid)
        return cid not in self.touched

    def open(self) -> None:
        self.conn = connect(self.ep, self.database)
        self.cur = self.conn.cursor()
        self.cur.execute("SELECT COALESCE(MAX(order_id), 0) FROM orders")
        self.next_order = self.cur.fetchone()[0] + 1
        self.next_customer = self.customers + 1

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def step(self) -> None:
        try:
            self._one(self.cur, self.rng, self.next_order, self.next_customer)
        except pymysql.MySQLError:
            self.cur.execute("ROLLBACK")  # what a failed multi-statement transaction did is undone
            raise
        finally:
            self.next_order += 1
            self.next_customer += 1 if self.rng.random() < 0.1 else 0

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
                cur.execute("UPDATE orders SET status=%s, note=%s, score=%s, shipped_at=%s WHERE order_id=%s",
                            (rng.choice(["PAID", "SHIPPED", "DONE", "RETURNED"]), f"upd {time.time()}",
                             rng.uniform(-5, 5), rng.choice([None, dt.datetime(2025, 1, 1, rng.randint(0, 23))]), oid))
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
        elif r < 0.72:  # customer updates (email feeds a computed GSI attribute; JSON; SET; BLOB; DATETIME)
            cid = rng.randint(1, self.customers)
            if cid in self.leave:
                return
            self.touched.add(cid)
            cur.execute("UPDATE customers SET email=%s, flags=%s, balance=balance+%s, profile=%s, avatar=%s, "
                        "created_at=created_at + INTERVAL %s SECOND WHERE customer_id=%s",
                        (f"changed{cid}.{rng.randint(0, 999)}@example.com", rng.choice(["", "vip", "beta,vip"]),
                         Decimal(rng.randint(-999, 999)) / 100,
                         rng.choice([None, json.dumps({"v": rng.randint(0, 9), "f": 0.25, "l": [None, True, "x"]})]),
                         rng.choice([None, b"", rng.randbytes(8)]), rng.randint(1, 999), cid))
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


# ---------------------------------------------------------------------------------------------------------------
# The independent comparison. It imports nothing of Turnout: the expected item of every source row is written here
# from the documented rules (README, "MySQL/MariaDB -> DynamoDB") and the demo spec
# (dags/specs/demo_shop_to_dynamodb.yaml), and every attribute of every target item is compared with its DynamoDB
# type. Where the README leaves a detail open, the rule used here says so:
#   integers, DECIMAL -> N, exact | FLOAT -> N, the shortest text that is the same float32 | DOUBLE -> N, the
#   shortest text that is the same double | CHAR/VARCHAR/TEXT/ENUM -> S | SET -> SS (empty: left out)
#   | JSON -> M/L/S/N/BOOL/NULL, numbers exact | BLOB/BINARY/VARBINARY -> B | DATE -> S "YYYY-MM-DD"
#   | DATETIME/TIMESTAMP -> S ISO-8601 "YYYY-MM-DDTHH:MM:SS", with ".ffffff" when the column keeps fractions of a
#   second (DATETIME(n), n > 0), TIMESTAMP ending in "Z" | cast epoch_ms -> N, milliseconds since 1970-01-01 UTC,
#   exact (fractions kept) | TIME -> S "HH:MM:SS" (".ffffff" when it has a fraction) | NULL -> left out (nulls: omit)
#   | computed attributes left out when a column they use is NULL | the type attribute `entity` names the table.

_EXACT = Context(prec=200)


def _num(x) -> str:
    """A number's canonical text (exact, normalized), for comparing N values by value."""
    d = x if isinstance(x, Decimal) else Decimal(x)
    return "0" if d == 0 else str(d.normalize(_EXACT))


def _float32_text(v: float) -> str:
    """The shortest decimal that reads back as the same float32."""
    import struct

    f32 = struct.unpack("f", struct.pack("f", v))[0]
    for p in range(1, 10):
        t = f"{f32:.{p}g}"
        if struct.unpack("f", struct.pack("f", float(t)))[0] == f32:
            return t
    return repr(f32)


def _json_typed(v):
    from decimal import Decimal as D

    if v is None:
        return ["NULL", True]
    if isinstance(v, bool):
        return ["BOOL", v]
    if isinstance(v, (int, D)):
        return ["N", _num(v)]
    if isinstance(v, str):
        return ["S", v]
    if isinstance(v, list):
        return ["L", [_json_typed(x) for x in v]]
    return ["M", {k: _json_typed(x) for k, x in v.items()}]


def typed(av: dict):
    """A DynamoDB attribute value (wire form) as [type, canonical value]: S and N and B and SS ... stay apart."""
    (tag, v), = av.items()
    if tag == "N":
        return ["N", _num(v)]
    if tag == "B":
        return ["B", bytes(v).hex()]
    if tag == "NS":
        return ["NS", sorted(_num(x) for x in v)]
    if tag in ("SS", "BS"):
        return [tag, sorted(bytes(x).hex() if tag == "BS" else x for x in v)]
    if tag == "M":
        return ["M", {k: typed(x) for k, x in v.items()}]
    if tag == "L":
        return ["L", [typed(x) for x in v]]
    return [tag, v]  # S, BOOL, NULL


def _iso(v, fsp: int, data_type: str) -> str:
    out = v.isoformat(timespec="microseconds" if fsp else "seconds")
    return out + "Z" if data_type == "timestamp" else out


def _time_text(v) -> str:
    us = v // dt.timedelta(microseconds=1)
    sign, us = ("-" if us < 0 else ""), abs(us)
    s, frac = divmod(us, 1_000_000)
    return f"{sign}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" + (f".{frac:06d}" if frac else "")


def expected_value(data_type: str, fsp: int, v, cast: str | None = None):
    """One column value as the [type, value] the documented rules give it; None: the attribute is left out."""
    from decimal import Decimal as D

    if v is None:
        return None
    if cast == "epoch_ms":
        us = (v - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
        return ["N", _num(D(us) / 1000)]
    if cast is not None:
        raise ValueError(f"no rule written here for cast {cast!r}")
    if data_type in ("tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "year"):
        return ["N", _num(v)]
    if data_type == "float":
        return ["N", _num(_float32_text(v))]
    if data_type == "double":
        return ["N", _num(repr(float(v)))]
    if data_type in ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum"):
        return ["S", v]
    if data_type == "set":
        members = sorted({m for m in v.split(",") if m}) if isinstance(v, str) else sorted(v)
        return ["SS", members] if members else None
    if data_type == "json":
        return _json_typed(json.loads(v, parse_float=D, parse_int=D))
    if data_type in ("tinyblob", "blob", "mediumblob", "longblob", "binary", "varbinary"):
        return ["B", bytes(v).hex()]
    if data_type == "date":
        return ["S", v.isoformat()]
    if data_type in ("datetime", "timestamp"):
        return ["S", _iso(v, fsp, data_type)]
    if data_type == "time":
        return ["S", _time_text(v)]
    raise ValueError(f"no rule written here for MySQL type {data_type!r}")


# the demo spec's mapping (dags/specs/demo_shop_to_dynamodb.yaml), written out: key templates, renames, drops,
# casts and computed attributes per table
DEMO_MAPPING = {
    "customers": {
        "entity": "customer", "drop": {"password_hash"}, "rename": {"name": "full_name"},
        "casts": {"created_at": "epoch_ms"},
        "pk": lambda r: f"CUSTOMER#{r['customer_id']}", "sk": lambda r: "PROFILE",
        "computed": {"GSI1PK": (("email",), lambda r: f"EMAIL#{r['email']}"),
                     "GSI1SK": (("customer_id",), lambda r: f"CUSTOMER#{r['customer_id']}")},
    },
    "orders": {
        "entity": "order", "drop": set(), "rename": {}, "casts": {},
        "pk": lambda r: f"CUSTOMER#{r['customer_id']}",
        "sk": lambda r: f"ORDER#{r['order_date'].isoformat()}#{r['order_id']:012d}",
        "computed": {"GSI1PK": (("status",), lambda r: f"STATUS#{r['status']}"),
                     "GSI1SK": (("order_date", "order_id"), lambda r: f"{r['order_date'].isoformat()}#{r['order_id']:012d}")},
    },
    "order_lines": {
        "entity": "order_line", "drop": set(), "rename": {}, "casts": {},
        "pk": lambda r: f"ORDER#{r['order_id']:012d}", "sk": lambda r: f"LINE#{r['line_no']:04d}",
        "computed": {},
    },
}


def expected_items(ep: dict, database: str, mapping: dict = DEMO_MAPPING) -> dict:
    """{"PK|SK": {attribute: [type, value]}} for every source row, from the rules above."""
    c = connect(ep, database)
    want: dict[str, dict] = {}
    with c.cursor() as cur:
        for table, m in mapping.items():
            cur.execute("SELECT COLUMN_NAME, LOWER(DATA_TYPE), COALESCE(DATETIME_PRECISION, 0) FROM "
                        "information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION",
                        (database, table))
            cols = cur.fetchall()
            # MariaDB's JSON is LONGTEXT with a CHECK (json_valid(`column`)): such a column is JSON
            cur.execute("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA=%s "
                        "AND TABLE_NAME=%s", (database, table))
            json_cols = {n for (clause,) in cur.fetchall() for n, _, _ in cols if f"json_valid(`{n}`)" in clause}
            cols = [(n, "json" if n in json_cols else ty, fsp) for n, ty, fsp in cols]
            # FLOAT read as `+ 0e0`: the stored float32 exactly (MariaDB's text protocol prints 6 digits)
            select = ", ".join(f"(`{n}` + 0e0)" if ty == "float" else f"`{n}`" for n, ty, _ in cols)
            cur.execute(f"SELECT {select} FROM `{table}`")
            for row in cur.fetchall():
                r = {n: v for (n, _, _), v in zip(cols, row)}
                item = {"PK": ["S", m["pk"](r)], "SK": ["S", m["sk"](r)], "entity": ["S", m["entity"]]}
                for (name, ty, fsp), v in zip(cols, row):
                    if name in m["drop"]:
                        continue
                    val = expected_value(ty, fsp, v, m["casts"].get(name))
                    if val is not None:
                        item[m["rename"].get(name, name)] = val
                for attr, (uses, fn) in m["computed"].items():
                    if all(r[u] is not None for u in uses):
                        item[attr] = ["S", fn(r)]
                key = f"{item['PK'][1]}|{item['SK'][1]}"
                if key in want:
                    raise AssertionError(f"two source rows map to the key {key}")
                want[key] = item
    c.close()
    return want


def to_av(tv: list):
    """[type, canonical value] (see typed) back to a DynamoDB attribute value."""
    tag, v = tv
    if tag == "N":
        return {"N": v}
    if tag == "B":
        return {"B": bytes.fromhex(v)}
    if tag == "NS":
        return {"NS": list(v)}
    if tag == "BS":
        return {"BS": [bytes.fromhex(x) for x in v]}
    if tag == "M":
        return {"M": {k: to_av(x) for k, x in v.items()}}
    if tag == "L":
        return {"L": [to_av(x) for x in v]}
    return {tag: v}


def plain_copy(ep: dict, database: str, ddb_endpoint: str, table: str) -> int:
    """Load the target "another way" (for CDC-only runs): every source row mapped by the documented rules
    (expected_items, not Turnout) and written with plain BatchWriteItem calls."""
    c = workload.client(ddb_endpoint)
    reqs = [{"PutRequest": {"Item": {k: to_av(v) for k, v in it.items()}}}
            for it in expected_items(ep, database).values()]
    for i in range(0, len(reqs), 25):
        todo = {table: reqs[i : i + 25]}
        while todo:
            todo = c.batch_write_item(RequestItems=todo).get("UnprocessedItems") or {}
    return len(reqs)


def full_compare(ep: dict, database: str, ddb_endpoint: str, table: str) -> dict:
    """Independent check of the demo's key redesign and type mapping (not the engine's templates or transform):
    the target's keys are exactly what every source row should produce, and every item has exactly the expected
    attributes, each with its expected DynamoDB type and value (extra attributes are differences)."""
    want = expected_items(ep, database)
    have = {}
    for it in workload.scan_all(ddb_endpoint, table):
        t = {k: typed(v) for k, v in it.items()}
        have[f"{t['PK'][1]}|{t['SK'][1]}"] = t

    def detail(k):
        a, b = want[k], have[k]
        return {f: {"want": a.get(f), "have": b.get(f)} for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)}

    canon = {k: json.dumps(v, sort_keys=True) for k, v in want.items()}
    got = {k: json.dumps(v, sort_keys=True) for k, v in have.items()}
    return workload_base.diff(canon, got, detail=lambda k: detail(k))
