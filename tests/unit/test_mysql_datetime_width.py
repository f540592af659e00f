"""DATETIME(n)/TIMESTAMP(n) with n > 0 render with their fraction whatever the value, so one column's texts have
one width and sort as the times do (a zero fraction used to drop its digits: '…:01Z' sorted after '…:01.5Z')."""

import datetime as dt

import pytest

from turnout.adapters.mysql.values import Column, neutral_value


@pytest.mark.parametrize("column_type, value, want", [
    ("datetime(3)", dt.datetime(2024, 4, 16, 23, 38, 1), "2024-04-16 23:38:01.000000"),
    ("datetime(3)", dt.datetime(2024, 4, 16, 23, 38, 1, 123000), "2024-04-16 23:38:01.123000"),
    ("timestamp(6)", dt.datetime(2024, 4, 16, 23, 38, 1), "2024-04-16 23:38:01.000000"),
    ("datetime", dt.datetime(2024, 4, 16, 23, 38, 1), "2024-04-16 23:38:01"),
], ids=["dt3-zero-fraction", "dt3-fraction", "ts6-zero-fraction", "dt0"])
def test_datetime_text_has_the_columns_width(column_type, value, want):
    col = Column("t", column_type.split("(")[0], column_type)
    assert neutral_value(col, value) == {"S": want}


def test_texts_of_one_column_sort_as_the_times_do():
    col = Column("t", "datetime", "datetime(6)")
    times = [dt.datetime(2024, 1, 1, 0, 0, 1), dt.datetime(2024, 1, 1, 0, 0, 1, 500000), dt.datetime(2024, 1, 1, 0, 0, 2)]
    texts = [neutral_value(col, t)["S"] for t in times]
    assert sorted(texts) == texts


def test_a_text_staged_without_its_zero_fraction_maps_to_the_same_key():
    """An export chunk written by the previous release holds '…:08' for a DATETIME(6) zero fraction; the binlog
    of today gives '…:08.000000'. Both must become one key, or one row would become two items."""
    from turnout.adapters.mysql.values import _key_text

    col = Column("t", "datetime", "datetime(6)")
    old = _key_text(col, {"S": "2024-03-05 06:07:08"}, 0)
    new = _key_text(col, neutral_value(col, dt.datetime(2024, 3, 5, 6, 7, 8)), 0)
    assert old == new == "2024-03-05T06:07:08.000000"
