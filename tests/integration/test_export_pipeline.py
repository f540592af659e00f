"""The pipelined export (chunk N encoded, put and checkpointed in a writer thread while the source is read for chunk
N+1), on DynamoDB Local and moto's S3: the unit's checkpoint never names a chunk that is not durable, a unit whose
chunk write fails stops with the checkpoint where it was, and the retry finishes the unit with every item once.

Nothing here waits on a timer: the test holds the put of chunk 1 until it has seen the export read the page of
chunk 2 (the reader is ahead of the writer), looks at the checkpoint, then makes that put fail."""

from __future__ import annotations

import threading

import pytest

import workload
from test_engine_dynamodb import run_bg
from test_fencing import _bucket, _chunk_keys, _ctx, _table
from turnout import layout, phases

pytestmark = pytest.mark.server

PAGE = 100  # chunk_items: one page of the scan is one chunk


class _HeldChunkPut:
    """Holds the put of one chunk until released, then fails it (a staging that went away)."""

    def __init__(self, ctx, marker: str):
        self.marker, self.real = marker, ctx.staging.put_bytes
        self.reached, self.release = threading.Event(), threading.Event()
        ctx.staging.put_bytes = self

    def __call__(self, key, data):
        if self.marker in key:
            self.reached.set()
            assert self.release.wait(120), "the test never released the held put"
            raise OSError(f"staging unreachable while writing {key}")
        return self.real(key, data)


class _CountedPages:
    """Counts the pages the export reads from the source, and wakes a waiter at each."""

    def __init__(self, ctx):
        self.pages, self.cond = 0, threading.Condition()
        real = ctx.source.read_unit

        def read_unit(*a, **kw):
            for page in real(*a, **kw):
                with self.cond:
                    self.pages += 1
                    self.cond.notify_all()
                yield page
        ctx.source.read_unit = read_unit

    def wait_for(self, n: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.pages >= n, timeout=120)


def test_export_checkpoint_never_names_a_chunk_in_flight_and_a_retry_exports_every_item_once(stack):
    table = _table(stack, 1200)  # 3 scan segments: unit 0 holds a few hundred items, several chunks
    bucket = _bucket(stack)
    a = _ctx(stack, table, bucket, chunk_items=PAGE)
    phases.preflight(a)
    phases.start_cdc(a)
    held, pages = _HeldChunkPut(a, "seg-00000/chunk-00001"), _CountedPages(a)
    seg_ck = layout.segment_checkpoint(0)
    t, box = run_bg(phases.export_segment, a, 0)
    assert held.reached.wait(120), box  # chunk 1 is in flight (held) ...
    assert pages.wait_for(3), box  # ... and the export has read chunk 2's page ahead of it
    ck = a.staging.get_json(seg_ck)
    assert [c["key"].rsplit("/", 1)[1] for c in ck["chunks"]] == ["chunk-00000.jsonl.gz"], ck
    assert ck["items"] == PAGE and not ck["done"], ck

    held.release.set()  # the put of chunk 1 fails: the unit stops, its checkpoint where it was
    t.join(120)
    assert not t.is_alive() and isinstance(box.get("error"), OSError), box
    ck = a.staging.get_json(seg_ck)
    assert len(ck["chunks"]) == 1 and ck["items"] == PAGE and not ck["done"], ck
    assert ck["owner"].get("released"), ck  # nothing of the failed try writes any more: the retry need not wait

    b = _ctx(stack, table, bucket, chunk_items=PAGE)  # the retry, from the checkpoint
    done = phases.export_segment(b, 0)
    keys = _chunk_keys(stack, bucket, a.spec.name, b.staging.get_json(seg_ck))
    for seg in (1, 2):
        phases.export_segment(b, seg)
        keys += _chunk_keys(stack, bucket, a.spec.name, b.staging.get_json(layout.segment_checkpoint(seg)))
    # every item of the table exactly once, read with boto3 (not Turnout)
    src = {(it["pk"]["S"], it["sk"]["S"]) for it in workload.scan_all(stack["source"]["endpoint"], table)}
    assert len(keys) == len(set(keys)) and set(keys) == src, (len(keys), len(set(keys)), len(src))
    assert done["items"] > 2 * PAGE
