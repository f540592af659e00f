"""MySQL values as text the way MySQL's SELECT renders them: TIME values, and JSON documents decoded by the
binlog reader (so the binlog and the export give one text for one value)."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any


def _time_text(v: dt.timedelta) -> str:
    us = v // dt.timedelta(microseconds=1)
    sign, us = ("-" if us < 0 else ""), abs(us)
    s, frac = divmod(us, 1_000_000)
    text = f"{sign}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
    return text + (f".{frac:06d}" if frac else "")


def mysql_json_text(v: Any) -> str:
    """A decoded JSON document as MySQL's SELECT renders it (its canonical text: ", " and ": " separators, keys in
    stored order, a DECIMAL as its digits, a DATETIME/DATE/TIME as a quoted string with microseconds), so the
    binlog and the export give one text for one value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, float):  # MySQL writes exponents bare: 1e20, 1.5e-7 (Python: 1e+20, 1.5e-07)
        return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", json.dumps(v))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, dt.datetime):
        return json.dumps(v.isoformat(sep=" ", timespec="microseconds"))
    if isinstance(v, dt.date):
        return json.dumps(v.isoformat())
    if isinstance(v, dt.time):
        return json.dumps(v.isoformat(timespec="microseconds"))
    if isinstance(v, dt.timedelta):
        t = _time_text(v)
        return json.dumps(t if "." in t else t + ".000000")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(mysql_json_text(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {mysql_json_text(x)}"
                               for k, x in v.items()) + "}"
    raise ValueError(f"a JSON value of type {type(v).__name__} ({v!r:.40})")


def _json_plain(v: Any) -> Any:
    """A binlog-decoded JSON document with its bytes (object keys, strings) as str, as SELECT gives them."""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8")
    if isinstance(v, dict):
        return {_json_plain(k): _json_plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_plain(x) for x in v]
    return v
