"""Staging's JSON-lines reader parses with msgspec where it can: every line gives exactly what json.loads gives
(the reference, the standard library), lines msgspec refuses included (NaN, 1e400, lone surrogates), blank lines
are skipped and a malformed line is an error naming the object and the line."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from turnout.errors import StagingError
from turnout.staging import LocalStaging

LINES = [
    '{"k": {"pk": {"S": "a"}}, "op": "put", "v": [123456789012345678901234567890, 7], "ts": 1.5}',
    '{"n": 1e400, "m": -1e400}',
    '{"x": NaN, "y": Infinity}',
    '{"s": "\\ud800 lone", "t": "caf\\u00e9 \\ud83d\\ude00"}',
    '[1, 2.5, -0.0, 1.0000000000000002, true, null, "x"]',
    '{"dup": 1, "dup": 2}',
    '  {"padded": "yes"}  ',
    '"just a string"',
    '0.1',
]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_every_line_parses_as_json_loads_parses_it(tmp_path):
    st = LocalStaging(str(tmp_path))
    data = gzip.compress("\n".join(LINES[:4] + ["", "   "] + LINES[4:]).encode("utf-8", "surrogatepass"))
    got = list(st.parse_jsonl_gz("f.jsonl.gz", data))
    want = [json.loads(line) for line in LINES]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert _same(g, w), (g, w)


def test_a_malformed_line_names_the_object_and_the_line(tmp_path):
    st = LocalStaging(str(tmp_path))
    data = gzip.compress(b'{"a": 1}\n\n{"b": }\n')
    with pytest.raises(StagingError, match=r"f\.jsonl\.gz line 3: not JSON"):
        list(st.parse_jsonl_gz("f.jsonl.gz", data))
