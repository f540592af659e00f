"""Binlog change capture with ``mysql-replication``.

The capture reads whole transactions and checkpoints the position *after a commit* (a rows event in the
middle of a transaction cannot be decoded without its table map), so a restart never lands inside a
transaction. A change's version is ``[binlog file number, commit end position, event end position, row
index]``, increasing in commit order.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, Optional

from ...codec import Item
from ...errors import TurnoutError
from ...ports import Change, Poll
from .client import converters
from .values import TABLE_ATTR, TableSchema, source_key

if TYPE_CHECKING:
    from .source import MySQLSource


# ---------------------------------------------------------------------------------- binlog capture


def _file_number(name: str) -> int:
    try:
        return int(name.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        raise TurnoutError(f"binlog file name {name!r} has no numeric suffix") from None


class SchemaChanged(TurnoutError):
    """A migrated table's columns changed after preflight: the capture stops instead of dropping columns."""


_TRUNCATE = re.compile(r"^\s*(?:/\*.*?\*/\s*)*TRUNCATE\s+(?:TABLE\s+)?((?:`[^`]+`|[\w$]+)(?:\s*\.\s*(?:`[^`]+`|[\w$]+))?)",
                       re.IGNORECASE | re.DOTALL)


def truncated_table(query: str, default_schema: str) -> Optional[tuple[str, str]]:
    """(schema, table) of a TRUNCATE statement, or None."""
    m = _TRUNCATE.match(query or "")
    if not m:
        return None
    parts = [p.strip().strip("`") for p in m.group(1).split(".")]
    return (parts[0], parts[1]) if len(parts) == 2 else (default_schema, parts[0])


def _key_of_raw(schema: TableSchema, row: dict) -> Optional[Item]:
    """The source key of a binlog row that could not be decoded whole (for the re-drive), if its key decodes."""
    from .values import neutral_value

    try:
        vals = row.get("after_values") or row.get("values") or row.get("before_values") or {}
        return {TABLE_ATTR: {"S": schema.name},
                **{k: neutral_value(schema.column(k), vals[k]) for k in schema.primary_key}}  # type: ignore[arg-type]
    except Exception:
        return None


def _key_builder(schema: TableSchema):
    """:func:`source_key` of a table's row images, without its generic loop for the usual one or two key columns."""
    name, pk = schema.name, schema.primary_key
    if len(pk) == 1:
        (k0,) = pk
        return lambda img: {TABLE_ATTR: {"S": name}, k0: img[k0]}
    if len(pk) == 2:
        k0, k1 = pk
        return lambda img: {TABLE_ATTR: {"S": name}, k0: img[k0], k1: img[k1]}
    return functools.partial(source_key, schema)


@functools.lru_cache(maxsize=512)
def _plan(schema: TableSchema) -> tuple:
    """(row image -> neutral item, the set of column names a row image must have, neutral item -> source key) of
    a table, built once."""
    names = frozenset(c.name for c in schema.columns)
    unnamed = any(n.startswith("UNKNOWN_COL") for n in names)  # never matches: _check_columns says why
    return converters(schema)[1], frozenset() if unnamed else names, _key_builder(schema)


class Undecodable(TurnoutError):
    """A rows event of a migrated table that neither Turnout's row decoder nor the library can decode."""


class Truncated(TurnoutError):
    """A migrated table was truncated: the binlog carries a statement, not the rows it removed."""


class BinlogChangeReader:
    """Reads row events of the migrated tables from a (file, position), whole transactions at a time."""

    # every key and image this reader returns is a plain wire item (S/N text, B bytes, NULL): the row converters
    # and neutral_value give nothing else, so the change log need not walk them again (changelog.encode_file)
    plain_images = True

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
        from pymysqlreplication.row_event import (
            DeleteRowsEvent,
            UpdateRowsEvent,
            WriteRowsEvent,
        )

        return BinLogStreamReader(
            connection_settings=self.source.config.replication_settings(), server_id=self.source.server_id,
            resume_stream=True, log_file=self.file, log_pos=self.pos, blocking=False,
            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent, QueryEvent, RotateEvent],
            only_schemas=[self.source.database], only_tables=list(self.schemas), enable_logging=False)

    def poll(self) -> Poll:
        from pymysqlreplication.event import QueryEvent, XidEvent
        from pymysqlreplication.row_event import (
            DeleteRowsEvent,
            UpdateRowsEvent,
            WriteRowsEvent,
        )

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
                    except (SchemaChanged, Undecodable):
                        if not out:
                            raise
                        pending.clear()  # hand over what was read before the change; the next poll raises
                        at_tip = False
                        break
                    continue
                if isinstance(ev, QueryEvent) and self._truncate_ahead(ev, stream, bool(out)):
                    at_tip = False  # hand over what was committed before it; the next poll raises
                    break
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

    def _truncate_ahead(self, ev, stream, holding: bool) -> bool:
        """A TRUNCATE of a migrated table raises :class:`Truncated`, or, while this poll holds committed changes,
        says to stop before it (they are handed over first)."""
        try:
            self._refuse_truncate(ev, stream)
        except Truncated:
            if not holding:
                raise
            return True
        return False

    def _refuse_truncate(self, ev, stream) -> None:
        default = ev.schema.decode() if isinstance(ev.schema, bytes) else str(ev.schema or "")
        query = ev.query.decode() if isinstance(ev.query, bytes) else str(ev.query)
        hit = truncated_table(query, default)
        if hit and hit[0] == self.source.database and hit[1] in self.schemas:
            raise Truncated(
                f"TRUNCATE of migrated table {hit[0]}.{hit[1]} at binlog {stream.log_file}:{stream.log_pos}: the binlog "
                "holds the statement, not the rows it removed, so the capture stops here (nothing past this point was "
                "captured) instead of leaving those rows on the target. Re-export the table: start the migration over "
                "with a fresh staging prefix and an emptied target.")

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
            self._live = None

    def _changes(self, ev, schema: TableSchema, stream, rejected: list) -> list[Change]:
        """One rows event as changes (versions completed with the commit position by the caller). Every row
        through the table's plan (built once); a row that cannot be decoded is dead-lettered, never dropped."""
        from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent

        from .rowdecode import rows_of

        end, file = stream.log_pos, stream.log_file
        kind = 0 if isinstance(ev, WriteRowsEvent) else 1 if isinstance(ev, UpdateRowsEvent) else 2
        created = float(ev.timestamp)
        plan = _plan(schema)  # once per event, not per row
        key_of = plan[2]

        def img_of(values: dict) -> Item:
            return self._img(schema, values, plan)

        at = f"{file}:{end}#"
        out = []
        rows = rows_of(ev)
        if rows is None:
            try:
                rows = ev.rows
            except Exception as exc:  # the whole event: no row of it can be told apart
                raise Undecodable(
                    f"binlog {file}:{end}: the rows event of {self.source.database}.{ev.table} cannot be decoded "
                    f"({type(exc).__name__}: {exc}); the capture stops before it (nothing from it on is in the change "
                    "log) and resumes there once the cause is fixed") from exc
        for i, row in enumerate(rows):
            try:
                if kind == 0:
                    img = img_of(row["values"])
                    out.append(Change(key_of(img), "put", img, [end, i], created, at + str(i), None))
                elif kind == 1:
                    img = img_of(row["after_values"])
                    out.append(Change(key_of(img), "put", img, [end, i], created, at + str(i),
                                      img_of(row["before_values"])))
                else:
                    old = img_of(row["values"])
                    out.append(Change(key_of(old), "delete", None, [end, i], created, at + str(i), old))
            except SchemaChanged:
                raise
            except Exception as exc:  # a row this reader cannot decode: dead-lettered, never dropped
                rejected.append((repr(row)[:2000], f"binlog {file}:{end} table {ev.table}: cannot decode "
                                 f"row: {exc}", _key_of_raw(schema, row)))
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

    def _img(self, schema: TableSchema, values: dict, plan: tuple) -> Item:
        build, expected = plan[0], plan[1]
        if values.keys() != expected:  # the columns preflight recorded, or SchemaChanged
            self._check_columns(schema, values)
        return build(values)

    def _check_columns(self, schema: TableSchema, values: dict) -> None:
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
