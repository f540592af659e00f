"""Preflight of a MySQL/MariaDB source: binlog settings and grants, tables and primary keys, the key redesign."""

from __future__ import annotations

from ...errors import RecordError
from ...ports import PreflightInputs
from .values import TABLE_ATTR


def schema_json(source) -> dict:
    """The source's table schemas as JSON (recorded by preflight, so every task maps alike)."""
    return {t: s.to_json() for t, s in source.schemas().items()}


KEY_ESCAPE = 1  # key rendering: 1 = separators inside values escaped (a preflight recorded without it: none)


def facts(source) -> dict:
    return {"source_schema": schema_json(source), "key_escape": KEY_ESCAPE}


def encoding_problems(src) -> list[str]:
    """Binlog encodings the reader does not decode: their transactions would pass unseen while the position
    moves on, so each is refused, naming the setting and the fix."""
    out = []
    if src.global_var("binlog_transaction_compression") == "ON":  # MySQL 8.0.20+
        out.append("binlog_transaction_compression is ON: Turnout's binlog reader does not decode compressed "
                   "transaction payloads (every change would be invisible to the capture): SET GLOBAL "
                   "binlog_transaction_compression = OFF (and in the server's config), and make sure no session "
                   "turns it on")
    opts = src.global_var("binlog_row_value_options")
    if opts and "PARTIAL_JSON" in opts:  # MySQL 8.0.3+
        out.append("binlog_row_value_options is PARTIAL_JSON: JSON_SET/JSON_REPLACE/JSON_REMOVE updates are "
                   "logged as partial diffs that Turnout does not apply: SET GLOBAL binlog_row_value_options = ''"
                   " (and in the server's config)")
    if src.global_var("log_bin_compress") == "ON":  # MariaDB 10.2+
        out.append("log_bin_compress is ON: MariaDB writes compressed row events that Turnout's binlog reader "
                   "does not decode (those changes would be skipped): SET GLOBAL log_bin_compress = OFF (and in "
                   "the server's config)")
    return out


def cascade_problems(src) -> list[str]:
    """Foreign keys whose ON DELETE/ON UPDATE action changes a migrated table inside InnoDB: those changes are
    not written to the binlog as row events, so the capture would never see them."""
    rows = src.query(
        "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, DELETE_RULE, UPDATE_RULE "
        "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA=%s", (src.database,))
    out = []
    for name, child, parent, on_delete, on_update in rows:
        acts = [f"ON {what} {rule}" for what, rule in (("DELETE", on_delete), ("UPDATE", on_update))
                if rule in ("CASCADE", "SET NULL", "SET DEFAULT")]
        if acts and child in src.tables:
            out.append(
                f"foreign key {name} on {src.database}.{child} (-> {parent}) has {' and '.join(acts)}: InnoDB "
                f"changes {child} rows itself and does not write those changes to the binlog, so the target would "
                f"keep rows the source lost; change it to RESTRICT/NO ACTION (the application deletes children "
                f"first), or leave {child} out of mapping.tables")
    return out


def charset_problems(src) -> list[str]:
    """Text columns of migrated tables in a character set the binlog reader cannot decode exactly: the export's
    SELECT gets the server's conversion to utf8mb4, the capture would not, so their changes would differ."""
    from .rowdecode import undecodable_charset

    rows = src.query(
        "SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_SET_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA=%s AND CHARACTER_SET_NAME IS NOT NULL ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (src.database,))
    out = []
    for table, column, charset, ctype in rows:
        why = undecodable_charset(charset) if table in src.tables else None
        if why:
            out.append(f"column {src.database}.{table}.{column} is in character set {charset}: {why}, and its "
                       f"changes would not match what the export reads; convert it before migrating (ALTER TABLE "
                       f"`{table}` MODIFY `{column}` {ctype} CHARACTER SET utf8mb4), or leave {table} out of "
                       "mapping.tables")
    return out


def preflight(p: PreflightInputs) -> dict:
    spec, src = p.spec, p.source
    problems = src.problems() + encoding_problems(src) + cascade_problems(src) + charset_problems(src)
    schema = schema_json(src)
    try:
        tr = p.build_transform({"source_schema": schema, "key_escape": KEY_ESCAPE})
    except RecordError as exc:
        problems.append(str(exc))
        tr = None
    target: dict = {}
    if tr is not None:
        if not p.sink.exists() and (p.dry_run or not spec.target.create_if_missing):
            if not p.dry_run:
                problems.append(f"the target {p.target_name} does not exist and target.create_if_missing is false")
            target = {"created": False, "would_create": True, "key": list(tr.target_key)}
        else:
            target = p.sink.ensure_target(tr.target_info(), list(tr.target_key))
    info = src.describe()
    settings = info.stream["binlog"]
    rate, est_hours = p.estimate(info.item_count)
    retention_h = settings.get("binlog_expire_seconds", 0) / 3600
    verdict = (
        f"estimated copy {est_hours:.2f} h for ~{info.item_count} rows of {len(spec.mapping.tables)} tables at "
        f"{rate:.0f} rows/s; binlogs are kept {retention_h:.0f} h (0 = until purged by hand), but the capture "
        "drains them into the durable change log in staging from the start")
    if retention_h and est_hours > retention_h:
        verdict += f"; note: the copy outlasts the binlog retention of {retention_h:.0f} h, keep the capture task healthy"
    return {
        "status": "NO-GO" if problems else "GO", "verdict": "; ".join(problems) if problems else verdict,
        "source_key": [TABLE_ATTR], "source_key_types": ["S"],
        "target_key": list(tr.target_key) if tr else [], "item_count_estimate": info.item_count,
        "size_bytes_estimate": info.size_bytes, "tables": info.indexes.get("tables", {}), "binlog": settings,
        "source_schema": schema, "key_escape": KEY_ESCAPE, "target": target, "estimated_copy_hours": round(est_hours, 3),
    }
