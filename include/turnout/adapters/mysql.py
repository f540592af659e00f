"""MySQL / MariaDB source: schema discovery, primary-key (keyset) export units, point reads, and binlog
change capture with ``mysql-replication``.

Rows leave this module as *neutral* items (see :mod:`turnout.relational`); the key redesign happens in the
transform, never here. Every connection runs with ``time_zone = '+00:00'`` so TIMESTAMP values read by
SELECT and by the binlog reader (which decodes them as UTC) agree.

Binlog positions: the capture reads whole transactions and checkpoints the position *after a commit*
(a rows event in the middle of a transaction cannot be decoded without its table map), so a restart never
lands inside a transaction. A change's version is ``[binlog file number, commit end position, event end
position, row index]``, increasing in commit order.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from ..codec import Item
from ..errors import PreflightError, TurnoutError
from ..relational import TABLE_ATTR, Column, TableSchema, row_item, source_key
from .base import Change, Poll, SourceInfo

log = logging.getLogger("turnout.mysql")

_INTEGER_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
REQUIRED_SETTINGS = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
                     "binlog_row_metadata": "FULL"}


@dataclass
class MySQLConfig:
    host: str
    port: int = 3306
    user: str = "root"
    password: str = ""
    database: str = ""
    connect_timeout: float = 10
    ssl: Optional[dict] = None
    extra: dict = field(default_factory=dict)

    def connect(self, *, streaming: bool = False):
        import pymysql
        import pymysql.cursors

        kw: dict[str, Any] = dict(host=self.host, port=int(self.port), user=self.user, password=self.password,
                                  database=self.database or None, connect_timeout=self.connect_timeout,
                                  charset="utf8mb4", autocommit=True, init_command="SET time_zone = '+00:00'")
        if self.ssl:
            kw["ssl"] = self.ssl
        if streaming:
            kw["cursorclass"] = pymysql.cursors.SSCursor
        try:
            return pymysql.connect(**kw)
        except pymysql.MySQLError as exc:
            raise TurnoutError(f"cannot connect to MySQL at {self.host}:{self.port} as {self.user!r}: {exc}") from None

    def replication_settings(self) -> dict:
        return {"host": self.host, "port": int(self.port), "user": self.user, "passwd": self.password}


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def float32_text(v: float) -> float:
    """The shortest decimal that is the same float32 (what MySQL prints for a FLOAT column)."""
    packed = struct.pack("<f", v)
    for p in range(6, 10):
        x = float(f"{v:.{p}g}")
        if struct.pack("<f", x) == packed:
            return x
    return v


class MySQLSource:
    def __init__(self, config: MySQLConfig, database: str, tables: list[str], server_id: int = 4271):
        self.config, self.database, self.tables, self.server_id = config, database, list(tables), server_id
        self._local = threading.local()
        self._schemas: Optional[dict[str, TableSchema]] = None

    # ------------------------------------------------------------------ connections

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
        out = {}
        for k, v in zip(REQUIRED_SETTINGS, row):
            v = str(v).upper() if v is not None else None
            out[k] = {"1": "ON", "0": "OFF"}.get(v, v)
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
            self.query("SHOW MASTER STATUS")
        except Exception as exc:
            out.append(f"user {self.config.user!r} cannot read the binlog position (SHOW MASTER STATUS: {exc}): "
                       f"GRANT REPLICATION CLIENT ON *.* TO '{self.config.user}'@'<host>' (MariaDB: BINLOG MONITOR)")
        schemas = self.schemas(refresh=True)
        for t in self.tables:
            if t not in schemas:
                out.append(f"table {self.database}.{t} (mapping.tables.{t}) does not exist")
            elif not schemas[t].primary_key:
                out.append(f"table {self.database}.{t} has no primary key: Turnout exports and applies changes by "
                           "primary key; add one")
        return out

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

    def record_position(self, allow_enable: bool = False) -> dict:
        row = self.query("SHOW MASTER STATUS")
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

    def plan_units(self, rows_per_unit: int) -> list[dict]:
        """Export units: primary-key ranges (lo exclusive, hi inclusive) of about rows_per_unit rows."""
        units = []
        est = self.describe().indexes["tables"]
        for t in self.tables:
            schema = self.schema(t)
            if est.get(t, {}).get("rows_estimate", 0) <= rows_per_unit:
                units.append({"table": t, "lo": None, "hi": None})
                continue
            bounds: list[dict] = []
            pk = schema.primary_key
            if len(pk) == 1 and schema.column(pk[0]).data_type in _INTEGER_TYPES:
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
            items = [self._item(schema, r) for r in rows]
            if len(rows) < page_items:
                yield items, None
                return
            start = {c: items[-1][c] for c in schema.primary_key}
            yield items, start

    def _item(self, schema: TableSchema, row: tuple) -> Item:
        values = {}
        for c, v in zip(schema.columns, row):
            if c.data_type == "float" and isinstance(v, float):
                v = float32_text(v)
            values[c.name] = v
        return row_item(schema, values)

    # ------------------------------------------------------------------ validation reads

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


# ---------------------------------------------------------------------------------- binlog capture


def _file_number(name: str) -> int:
    try:
        return int(name.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        raise TurnoutError(f"binlog file name {name!r} has no numeric suffix") from None


class SchemaChanged(TurnoutError):
    """A migrated table's columns changed after preflight: the capture stops instead of dropping columns."""


class BinlogChangeReader:
    """Reads row events of the migrated tables from a (file, position), whole transactions at a time."""

    def __init__(self, source: MySQLSource, position: dict, state: dict | None, *, limit: int = 1000):
        self.source, self.limit = source, limit
        st = state or {}
        self.file = st.get("file") or position["file"]
        self.pos = int(st.get("pos") or position["pos"])
        self.base = self.file.rsplit(".", 1)[0]
        self.schemas = source.schemas()
        self.events = st.get("events", 0)
        self._live = None

    def state(self) -> dict:
        return {"file": self.file, "pos": self.pos, "events": self.events}

    def advance_past(self, change: Change) -> None:
        fno, commit_end = change.version[0], change.version[1]
        if [fno, commit_end] > [_file_number(self.file), self.pos]:
            self.file, self.pos = f"{self.base}.{fno:06d}", commit_end

    def _stream(self):
        from pymysqlreplication import BinLogStreamReader
        from pymysqlreplication.event import QueryEvent, RotateEvent, XidEvent
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

        return BinLogStreamReader(
            connection_settings=self.source.config.replication_settings(), server_id=self.source.server_id,
            resume_stream=True, log_file=self.file, log_pos=self.pos, blocking=False,
            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent, QueryEvent, RotateEvent],
            only_schemas=[self.source.database], only_tables=list(self.schemas), enable_logging=False)

    def poll(self) -> Poll:
        from pymysqlreplication.event import QueryEvent, XidEvent
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

        out: list[Change] = []
        rejected: list[tuple[Any, str]] = []
        pending: list[Change] = []  # changes of the open transaction, released at its commit
        # a stream left open by a poll that stopped at its limit goes on where it stopped (a commit boundary);
        # reconnecting costs two connections (and pymysql's TLS context) per poll under load
        stream, self._live = self._live or self._stream(), None
        at_tip = True
        keep = False
        try:
            for ev in self._events(stream):
                if isinstance(ev, (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)):
                    schema = self.schemas.get(ev.table)
                    if schema is None or ev.schema != self.source.database:
                        continue
                    try:
                        pending += self._changes(ev, schema, stream, rejected)
                    except SchemaChanged:
                        if not out:
                            raise
                        pending.clear()  # hand over what was read before the change; the next poll raises
                        at_tip = False
                        break
                    continue
                commit = isinstance(ev, XidEvent) or (
                    isinstance(ev, QueryEvent) and ev.query.strip().upper() not in ("BEGIN", "XA START"))
                if not commit:
                    continue
                self.events += 1
                fno, commit_end = _file_number(stream.log_file), stream.log_pos
                for c in pending:
                    c.version = [fno, commit_end, *c.version]
                out += pending
                pending = []
                self.file, self.pos = stream.log_file, commit_end
                if len(out) >= self.limit:
                    at_tip, keep = False, True
                    break
            else:
                # a transaction cannot be half in the binlog: the server writes it whole at commit
                if pending:
                    raise TurnoutError(f"binlog ended inside a transaction at {stream.log_file}:{stream.log_pos}")
                if stream.log_file and stream.log_pos and not out:
                    # nothing of ours, but the position moved (other tables' transactions, rotations)
                    if [_file_number(stream.log_file), stream.log_pos] > [_file_number(self.file), self.pos]:
                        self.file, self.pos = stream.log_file, stream.log_pos
        finally:
            if keep:
                self._live = stream
            else:
                stream.close()
        return Poll(changes=out, rejected=rejected, at_tip=at_tip)

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
            self._live = None

    def _changes(self, ev, schema: TableSchema, stream, rejected: list) -> list[Change]:
        """One rows event as changes (versions completed with the commit position by the caller)."""
        from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent

        end = stream.log_pos
        out = []
        for i, row in enumerate(ev.rows):
            try:
                if isinstance(ev, WriteRowsEvent):
                    img, old, op = self._img(schema, row["values"]), None, "put"
                elif isinstance(ev, UpdateRowsEvent):
                    img, old, op = self._img(schema, row["after_values"]), self._img(schema, row["before_values"]), "put"
                else:
                    img, old, op = None, self._img(schema, row["values"]), "delete"
                key = source_key(schema, img or old)
            except SchemaChanged:
                raise
            except Exception as exc:  # a row this reader cannot decode: dead-lettered, never dropped
                rejected.append((repr(row)[:2000], f"binlog {stream.log_file}:{end} table {ev.table}: cannot decode "
                                 f"row: {exc}"))
                continue
            out.append(Change(key=key, op=op, image=img, version=[end, i], created_at=float(ev.timestamp),
                              origin=f"{stream.log_file}:{end}#{i}", old_image=old))
        return out

    def _events(self, stream):
        import pymysql

        try:
            yield from stream
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == 1236:  # ER_MASTER_FATAL_ERROR_READING_BINLOG: purged, or gone
                raise TurnoutError(
                    f"the server no longer has the binlog at {self.file}:{self.pos} ({exc.args[1]}): changes after "
                    "that point cannot be read, so the target would miss them. Keep binlogs longer "
                    "(binlog_expire_logs_seconds) and start the migration over with a fresh staging prefix") from None
            raise

    def _img(self, schema: TableSchema, values: dict) -> Item:
        if any(str(k).startswith("UNKNOWN_COL") for k in values):
            raise SchemaChanged(f"binlog rows of {schema.name} carry no column names: the server's "
                                "binlog_row_metadata must be FULL (SET GLOBAL binlog_row_metadata = 'FULL')")
        extra = sorted(set(values) - {c.name for c in schema.columns})
        missing = [c.name for c in schema.columns if c.name not in values]
        if extra or missing:
            raise SchemaChanged(
                f"table {self.source.database}.{schema.name} changed during the migration (binlog rows have columns "
                f"{sorted(values)}; preflight recorded {[c.name for c in schema.columns]}): Turnout does not follow "
                "ALTER TABLE mid-migration, so nothing was applied past this point; finish schema changes before "
                "migrating, or start over with a fresh staging prefix")
        fixed = {}
        for c in schema.columns:
            if c.name not in values:
                raise TurnoutError(f"column {c.name!r} missing from the row image (binlog_row_image must be FULL, "
                                   "binlog_row_metadata FULL)")
            v = values[c.name]
            if c.data_type == "float" and isinstance(v, float):
                v = float32_text(v)
            fixed[c.name] = v
        return row_item(schema, fixed)
