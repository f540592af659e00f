"""MySQL 8.4 removed SHOW MASTER STATUS (SHOW BINARY LOG STATUS replaces it); MariaDB 10.11 has only the former.
The source asks for the old form first and falls back, and says both errors when neither works (pure: the
statements are answered here; the MariaDB path runs against the real server in tests/integration)."""

import pytest

from turnout.adapters.mysql.source import MySQLSource
from turnout.errors import TurnoutError


def _source(answers):
    src = MySQLSource.__new__(MySQLSource)
    calls = []

    def query(stmt, *args):
        calls.append(stmt)
        a = answers[stmt]
        if isinstance(a, Exception):
            raise a
        return a

    src.query = query
    return src, calls


def test_mysql_84_binary_log_status_is_used_when_master_status_is_gone():
    src, calls = _source({"SHOW MASTER STATUS": Exception("(1064, \"You have an error in your SQL syntax near "
                                                          "'MASTER STATUS'\")"),
                          "SHOW BINARY LOG STATUS": [("binlog.000007", 4711, "", "", "")]})
    assert src.binlog_status()[0][:2] == ("binlog.000007", 4711)
    assert calls == ["SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"]


def test_neither_statement_works_names_both():
    src, _ = _source({"SHOW MASTER STATUS": Exception("denied A"), "SHOW BINARY LOG STATUS": Exception("denied B")})
    with pytest.raises(TurnoutError, match=r"SHOW MASTER STATUS: denied A; SHOW BINARY LOG STATUS: denied B"):
        src.binlog_status()
