"""MySQL / MariaDB connections and the replication settings the route requires.

Every connection runs with ``time_zone = '+00:00'`` so TIMESTAMP values read by SELECT and by the binlog
reader (which decodes them as UTC) agree.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from typing import Any, Optional

from ...errors import TurnoutError

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
