"""MySQL / MariaDB source: schema discovery, primary-key (keyset) export units and point reads.

Rows leave this module as *neutral* items (see :mod:`turnout.adapters.mysql.values`); the key redesign happens
in the transform, never here.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator, Optional

from ...codec import Item
from ...errors import PreflightError, TurnoutError
from ...ports import Capacity, SourceCapabilities, SourceInfo
from .binlog import BinlogChangeReader
from .client import _INTEGER_TYPES, REQUIRED_SETTINGS, MySQLConfig, _q, converters, image
from .values import TABLE_ATTR, Column, TableSchema, row_item


class MySQLSource:
    capabilities = SourceCapabilities(reports_deletes=True, export_kinds=("keyset",),
                                      ordering="binlog commit order (file, commit position, event, row)")

    def __init__(self, config: MySQLConfig, database: str, tables: list[str], server_id: int = 4271,
                 rows_per_unit: int = 500_000):
        self.config, self.database, self.tables, self.server_id = config, database, list(tables), server_id
        self.rows_per_unit = rows_per_unit
        self._local = threading.local()
        self._schemas: Optional[dict[str, TableSchema]] = None

    # ------------------------------------------------------------------ connections

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None and c.open:
            c.close()

    @property
    def conn(self):
        c = getattr(self._local, "conn", None)
        if c is None or not c.open:
            c = self._local.conn = self.config.connect()
        return c

    def query(self, sql: str, args=None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    # ------------------------------------------------------------------ schema

    def schemas(self, refresh: bool = False) -> dict[str, TableSchema]:
        if self._schemas is not None and not refresh:
            return self._schemas
        db = self.database
        cols = self.query(
            "SELECT TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), LOWER(COLUMN_TYPE), COLUMN_KEY FROM "
            "information_schema.COLUMNS WHERE TABLE_SCHEMA=%s ORDER BY TABLE_NAME, ORDINAL_POSITION", (db,))
        pks = self.query(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA=%s AND "
            "CONSTRAINT_NAME='PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION", (db,))
        json_cols: set[tuple[str, str]] = set()
        try:
            for t, clause in self.query("SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                                        "WHERE CONSTRAINT_SCHEMA=%s", (db,)):
                low = clause.lower()
                if low.startswith("json_valid("):
                    json_cols.add((t, low[len("json_valid("):].strip(" `)")))
        except Exception:  # MySQL before 8.0.16 has no CHECK_CONSTRAINTS; its JSON type is named json
            pass
        by_table: dict[str, list[Column]] = {}
        for t, c, dtype, ctype, _ in cols:
            by_table.setdefault(t, []).append(Column(c, dtype, ctype, json=(t, c.lower()) in json_cols))
        pk_of: dict[str, list[str]] = {}
        for t, c in pks:
            pk_of.setdefault(t, []).append(c)
        self._schemas = {t: TableSchema(t, tuple(cs), tuple(pk_of.get(t, ()))) for t, cs in by_table.items()
                         if t in self.tables}
        return self._schemas

    def schema(self, table: str) -> TableSchema:
        s = self.schemas().get(table)
        if s is None:
            raise TurnoutError(f"table {self.database}.{table} does not exist")
        return s

    def settings(self) -> dict:
        names = ", ".join(f"@@GLOBAL.{k}" for k in REQUIRED_SETTINGS)
        row = self.query(f"SELECT {names}")[0]
        out: dict[str, Any] = {}
        for k, v in zip(REQUIRED_SETTINGS, row):
            text = str(v).upper() if v is not None else None
            out[k] = {"1": "ON", "0": "OFF"}.get(text or "", text)
        version = self.query("SELECT VERSION()")[0][0]
        out["version"] = version
        try:
            out["binlog_expire_seconds"] = int(self.query("SELECT @@GLOBAL.binlog_expire_logs_seconds")[0][0])
        except Exception:
            out["binlog_expire_seconds"] = int(float(self.query("SELECT @@GLOBAL.expire_logs_days")[0][0]) * 86400)
        return out

    def problems(self) -> list[str]:
        """What stops change capture or export, each with the setting or grant to change."""
        out = []
        s = self.settings()
        for k, want in REQUIRED_SETTINGS.items():
            if s.get(k) != want:
                fix = ("start the server with --log-bin" if k == "log_bin" else
                       f"SET GLOBAL {k} = '{want}' (and {k} = {want} in the server's config so it survives a restart)")
                out.append(f"{k} is {s.get(k)}, Turnout needs {want}: {fix}")
        grants = " ".join(r[0] for r in self.query("SHOW GRANTS")).upper()
        every = "ALL PRIVILEGES ON *.*" in grants
        if not every and "REPLICATION SLAVE" not in grants:
            out.append(f"user {self.config.user!r} lacks the REPLICATION SLAVE grant (binlog capture): "
                       f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{self.config.user}'@'<host>'")
        try:
            self.binlog_status()
        except Exception as exc:
            out.append(f"user {self.config.user!r} cannot read the binlog position ({exc}): "
                       f"GRANT REPLICATION CLIENT ON *.* TO '{self.config.user}'@'<host>' (MariaDB: BINLOG MONITOR)")
        schemas = self.schemas(refresh=True)
        for t in self.tables:
            if t not in schemas:
                out.append(f"table {self.database}.{t} (mapping.tables.{t}) does not exist")
            elif not schemas[t].primary_key:
                out.append(f"table {self.database}.{t} has no primary key: Turnout exports and applies changes by "
                           "primary key; add one")
        return out

    def binlog_status(self) -> list:
        """SHOW MASTER STATUS, or SHOW BINARY LOG STATUS where the server has only that (MySQL 8.4+)."""
        errors = []
        for stmt in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):
            try:
                return list(self.query(stmt))
            except Exception as exc:
                errors.append(f"{stmt}: {exc}")
        raise TurnoutError("; ".join(errors))

    def global_var(self, name: str) -> Optional[str]:
        """A global variable's value as upper-case text, or None where this server has no such variable."""
        try:
            v = self.query(f"SELECT @@GLOBAL.{name}")[0][0]
        except Exception:
            return None
        text = str(v).upper() if v is not None else ""
        return {"1": "ON", "0": "OFF"}.get(text, text)

    def describe(self) -> SourceInfo:
        rows = self.query("SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES WHERE "
                          "TABLE_SCHEMA=%s", (self.database,))
        stats = {t: (int(n or 0), int(b or 0)) for t, n, b in rows if t in self.tables}
        return SourceInfo(key_attributes=[TABLE_ATTR], key_schema=[], attribute_definitions=[],
                          item_count=sum(n for n, _ in stats.values()), size_bytes=sum(b for _, b in stats.values()),
                          stream={"binlog": {k: v for k, v in self.settings().items()}},
                          indexes={"tables": {t: {"rows_estimate": n, "bytes_estimate": b}
                                              for t, (n, b) in stats.items()}})

    # ------------------------------------------------------------------ position

    def record_position(self, allow_enable: bool | None = None) -> dict:
        row = self.binlog_status()
        if not row:
            raise PreflightError("SHOW MASTER STATUS returned nothing: binary logging is off (start with --log-bin)")
        f, pos = row[0][0], int(row[0][1])
        gtid = None
        for var in ("@@GLOBAL.gtid_binlog_pos", "@@GLOBAL.gtid_executed"):
            try:
                gtid = self.query(f"SELECT {var}")[0][0]
                break
            except Exception:
                continue
        return {"kind": "mysql_binlog", "file": f, "pos": pos, "gtid": gtid, "recorded_at": time.time(),
                "database": self.database, "tables": self.tables}

    def change_reader(self, position: dict, state: dict | None, limit: int = 1000) -> "BinlogChangeReader":
        return BinlogChangeReader(self, position, state, limit=limit)

    # ------------------------------------------------------------------ export

    @staticmethod
    def _select_list(schema: TableSchema) -> str:
        # FLOAT: MariaDB prints 6 significant digits; `+ 0e0` gives the stored float32 exactly (as the binlog does)
        return ", ".join(f"({_q(c.name)} + 0e0)" if c.data_type == "float" else _q(c.name) for c in schema.columns)

    def _pk_order(self, schema: TableSchema) -> str:
        return ", ".join(_q(c) for c in schema.primary_key)

    @staticmethod
    def _after(pk: tuple[str, ...], n: int) -> str:
        """SQL for (pk) > (values), expanded so the optimizer uses the primary key range."""
        ors = []
        for i in range(n):
            eqs = [f"{_q(pk[j])} = %s" for j in range(i)]
            ors.append("(" + " AND ".join(eqs + [f"{_q(pk[i])} > %s"]) + ")")
        return "(" + " OR ".join(ors) + ")"

    @staticmethod
    def _after_args(values: list) -> list:
        out = []
        for i in range(len(values)):
            out += values[:i] + [values[i]]
        return out

    @staticmethod
    def _pk_values(schema: TableSchema, item: Item) -> list:
        out = []
        for c in schema.primary_key:
            (tag, v), = item[c].items()
            out.append(v)
        return out

    def read_units(self, records: list[Item]) -> float:
        return float(len(records))  # MySQL has no capacity unit: rows

    def capacity(self) -> Capacity:
        return Capacity(None, None, "rows", "a MySQL server reports no capacity per second")

    def unit_group(self, unit: dict) -> str:
        return str(unit["table"])

    def plan_units(self, rows_per_unit: int | None = None) -> list[dict]:
        """Export units: primary-key ranges (lo exclusive, hi inclusive) of about rows_per_unit rows."""
        rows_per_unit = rows_per_unit or self.rows_per_unit
        units = []
        est = self.describe().indexes["tables"]
        for t in self.tables:
            schema = self.schema(t)
            if est.get(t, {}).get("rows_estimate", 0) <= rows_per_unit:
                units.append({"table": t, "lo": None, "hi": None})
                continue
            bounds: list[dict] = []
            pk = schema.primary_key
            first = schema.column(pk[0]) if len(pk) == 1 else None
            if first is not None and first.data_type in _INTEGER_TYPES:
                # one integer key: split its value range arithmetically (no index scan; uneven if keys are sparse)
                lo_v, hi_v = self.query(f"SELECT MIN({_q(pk[0])}), MAX({_q(pk[0])}) FROM {_q(t)}")[0]
                n = -(-est[t]["rows_estimate"] // rows_per_unit)
                if lo_v is not None and n > 1:
                    step = -(-(hi_v - lo_v + 1) // n)
                    bounds = [{pk[0]: lo_v - 1 + step * k} for k in range(1, n) if lo_v - 1 + step * k < hi_v]
                units += self._ranges(schema, bounds)
                continue
            conn = self.config.connect(streaming=True)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"SELECT {self._pk_order(schema)} FROM {_q(t)} ORDER BY {self._pk_order(schema)}")
                    n = 0
                    for row in cur:
                        n += 1
                        if n % rows_per_unit == 0:
                            bounds.append({c: v for c, v in zip(schema.primary_key, row)})
            finally:
                conn.close()
            units += self._ranges(schema, bounds)
        return units

    @staticmethod
    def _ranges(schema: TableSchema, bounds: list[dict]) -> list[dict]:
        out, lo = [], None
        for b in bounds:
            hi = row_item(schema, b)
            hi.pop(TABLE_ATTR)
            out.append({"table": schema.name, "lo": lo, "hi": hi})
            lo = hi
        out.append({"table": schema.name, "lo": lo, "hi": None})
        return out

    def read_unit(self, unit: dict, resume: Optional[Item], page_items: int) -> Iterator[tuple[list[Item], Any]]:
        """Keyset pages of one unit: yields (items, last primary key read) and (items, None) at the end."""
        t = unit["table"]
        schema = self.schema(t)
        cols = self._select_list(schema)
        order = self._pk_order(schema)
        hi = unit.get("hi")
        start = resume if resume is not None else unit.get("lo")
        n = len(schema.primary_key)
        while True:
            where, args = [], []
            if start is not None:
                where.append(self._after(schema.primary_key, n))
                args += self._after_args(self._pk_values(schema, start))
            if hi is not None:
                where.append("NOT " + self._after(schema.primary_key, n))
                args += self._after_args(self._pk_values(schema, hi))
            sql = (f"SELECT {cols} FROM {_q(t)}" + (" WHERE " + " AND ".join(where) if where else "")
                   + f" ORDER BY {order} LIMIT {int(page_items)}")
            rows = self.query(sql, args)
            build = converters(schema)[0]
            items = [build(r) for r in rows]
            if len(rows) < page_items:
                yield items, None
                return
            start = {c: items[-1][c] for c in schema.primary_key}
            yield items, start

    def _item(self, schema: TableSchema, row: tuple) -> Item:
        return image(schema, row)  # FLOAT columns: the stored float32, as the binlog gives it

    # ------------------------------------------------------------------ validation reads

    def sample(self, n: int) -> list[Item]:
        out: list[Item] = []
        for t in self.tables:
            schema = self.schema(t)
            rows = self.query(f"SELECT {self._select_list(schema)} FROM {_q(t)} LIMIT {max(1, n // len(self.tables))}")
            out += [self._item(schema, row) for row in rows]
        return out

    def scan(self, segment: int = 0, total: int = 1) -> Iterator[Item]:
        """Every row of every migrated table whose primary-key hash falls in the segment (one pass each)."""
        conn = self.config.connect(streaming=True)
        try:
            for t in self.tables:
                schema = self.schema(t)
                cols = self._select_list(schema)
                sql = f"SELECT {cols} FROM {_q(t)}"
                if total > 1:
                    sql += (f" WHERE CRC32(CONCAT_WS(0x1f, {self._pk_order(schema)})) % {int(total)} = "
                            f"{int(segment)}")
                with conn.cursor() as cur:
                    cur.execute(sql)
                    for row in cur:
                        yield self._item(schema, row)
        finally:
            conn.close()

    def get(self, key: Item) -> Optional[Item]:
        t = key[TABLE_ATTR]["S"]
        schema = self.schema(t)
        cols = self._select_list(schema)
        where = " AND ".join(f"{_q(c)} = %s" for c in schema.primary_key)
        rows = self.query(f"SELECT {cols} FROM {_q(t)} WHERE {where}", self._pk_values(schema, key))
        return self._item(schema, rows[0]) if rows else None
