"""The change log keeps MongoDB documents exactly (canonical Extended JSON in JSON lines)."""

from __future__ import annotations

import bson

from turnout import changelog


def test_change_log_keeps_documents_exactly(tmp_path):
    """The change log (JSON lines in staging) round-trips documents of every BSON type through the codec."""
    import datetime as dt
    import uuid as uuidlib

    from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

    from turnout.ports import Change
    from turnout.adapters.mongo.codec import BSON
    from turnout.staging import LocalStaging

    doc = {"_id": ObjectId(), "d": Decimal128("1.10"), "l": Int64(5), "i": 5, "f": -0.0, "t": Timestamp(5, 1),
           "u": Binary(uuidlib.uuid4().bytes, 4), "b": Binary(b"\x00\x01", 128), "r": Regex("^a.*", "im"),
           "c": Code("x+1", {"x": 1}), "mn": MinKey(), "mx": MaxKey(), "dt": dt.datetime(1969, 7, 20, 20, 17, 40, 123000,
           tzinfo=dt.timezone.utc), "n": {"z": [1, {"y": None}], "a": True}}
    st = LocalStaging(str(tmp_path))
    c = Change(key={"ns": "db.c", "_id": doc["_id"]}, op="put", image={"ns": "db.c", "doc": doc}, version=[3],
               created_at=1.5, origin="db.c|{}")
    changelog.write_file(st, 0, [c], 2.0, BSON)
    back = changelog.read_file(st, 0, BSON)[0]
    assert bson.encode(back.image["doc"]) == bson.encode(doc)
    assert back.key == c.key and back.version == [3]
