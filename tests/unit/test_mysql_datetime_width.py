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
