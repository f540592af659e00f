"""The capture's change log skips the plain-item walk for the binlog reader's changes (its ``plain_images``): that
is only right because every key and image the reader builds is a plain wire item, for every column type and every
odd value a column can hold. Shown here over the every-type rows of test_mysql_fast_paths, and the file written
without the walk is byte for byte the file written with it (and the standard JSON of the codec)."""

from __future__ import annotations

import gzip
import json

import pytest

from test_mysql_fast_paths import ROWS, T
from turnout import changelog
from turnout.adapters.mysql.binlog import BinlogChangeReader, _plan
from turnout.adapters.mysql.values import source_key
from turnout.chunks import plain_wire
from turnout.ports import Change


def _changes(rows=ROWS) -> list[Change]:
    build, _names, key_of = _plan(T)
    out = []
    for i, row in enumerate(rows):
        img = build({c.name: v for c, v in zip(T.columns, row)})
        assert key_of(img) == source_key(T, img)
        out.append(Change(key_of(img), "put", img, [1, 99, 50, i], 1700000000.0, f"b.000001:50#{i}", img))
        out.append(Change(key_of(img), "delete", None, [1, 99, 51, i], 1700000000.5, f"b.000001:51#{i}", img))
    return out


def test_binlog_reader_images_are_plain_wire_items():
    assert BinlogChangeReader.plain_images is True
    for c in _changes():
        assert plain_wire(c.key) and plain_wire(c.old_image) and (c.image is None or plain_wire(c.image))


def test_change_log_without_the_walk_is_the_same_file():
    changes = _changes(ROWS[:2])
    fast = gzip.decompress(changelog.encode_file(changes, 1700000001.25, plain=True))
    walked = gzip.decompress(changelog.encode_file(changes, 1700000001.25))
    assert fast == walked
    std = [json.loads(json.dumps(changelog.encode(c, 1700000001.25), separators=(",", ":"), ensure_ascii=False))
           for c in changes]
    assert [json.loads(x) for x in fast.splitlines()] == std


def test_change_log_without_the_walk_still_refuses_what_the_standard_encoding_refuses():
    changes = _changes(ROWS[2:])  # undecodable bytes in a text column: a lone surrogate
    for plain in (True, False):
        with pytest.raises(UnicodeEncodeError):
            changelog.encode_file(changes, 1.0, plain=plain)
    with pytest.raises(UnicodeEncodeError):
        json.dumps(changelog.encode(changes[0], 1.0), ensure_ascii=False).encode()
