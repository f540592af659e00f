"""Digests of one side of a validation, in parallel scan segments: per bucket counts and XORs of item hashes
(pass 1), per cell of the differing buckets (pass 2), and key -> hash for the differing cells (pass 3)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

from ..codec import Item, stable_bucket
from ..errors import RecordError

SCAN_SEGMENTS = 4
CELLS = 64  # pass 2 splits each differing bucket into this many cells


def _scan_side(scan: Callable[[int, int], Iterator[Item]], fn, total: int = SCAN_SEGMENTS):
    def one(seg):
        acc = fn.new()
        for it in scan(seg, total):
            fn.add(acc, it)
        return acc

    with ThreadPoolExecutor(total) as pool:
        parts = list(pool.map(one, range(total)))
    return fn.merge(parts)


class _Digest:
    def __init__(self, buckets: int, key_of, codec, sample: int = 0, required=(), group_of=None):
        self.buckets, self.key_of, self.codec, self.sample, self.required = buckets, key_of, codec, sample, required
        self.group_of = group_of

    def new(self):
        return {"count": [0] * self.buckets, "xor": [0] * self.buckets, "sample": [], "errors": [], "groups": {}}

    def add(self, acc, item):
        try:
            item, key, _src_key = self.key_of(item)
        except RecordError as exc:
            acc["errors"].append(str(exc))
            return
        kt = self.codec.key_text(key)
        b = stable_bucket(kt, self.buckets)
        acc["count"][b] += 1
        acc["xor"][b] ^= int.from_bytes(self.codec.hash(item), "big")
        if self.group_of is not None:
            g = self.group_of(item) or "(unknown)"
            acc["groups"][g] = acc["groups"].get(g, 0) + 1
        if len(acc["sample"]) < self.sample:
            acc["sample"].append({"key": kt, **{a: (a in item) for a in self.required}})

    def merge(self, parts):
        out = self.new()
        for p in parts:
            for b in range(self.buckets):
                out["count"][b] += p["count"][b]
                out["xor"][b] ^= p["xor"][b]
            out["sample"].extend(p["sample"][: max(0, self.sample - len(out["sample"]))])
            out["errors"].extend(p["errors"])
            for g, n in p["groups"].items():
                out["groups"][g] = out["groups"].get(g, 0) + n
        return out


class _CellScan:
    """What passes 2 and 3 share: an item's transformed form, keys and cell (None for a malformed record, which
    pass 1 already counted)."""

    def __init__(self, buckets: int, key_of, codec):
        self.buckets, self.key_of, self.codec = buckets, key_of, codec

    def locate(self, item):
        try:
            item, key, src_key = self.key_of(item)
        except RecordError:
            return None
        kt = self.codec.key_text(key)
        return item, key, src_key, kt, stable_bucket(kt, self.buckets * CELLS)


class _Cells(_CellScan):
    """Pass 2: count and XOR per cell of the differing buckets (cell = finer hash of the target key)."""

    def __init__(self, buckets: int, wanted: set[int], key_of, codec):
        super().__init__(buckets, key_of, codec)
        self.wanted = wanted

    def new(self):
        return {}

    def add(self, acc, item):
        found = self.locate(item)
        if found is None:
            return
        item, _key, _src, _kt, cell = found
        if cell % self.buckets in self.wanted:
            c = acc.setdefault(cell, [0, 0])
            c[0] += 1
            c[1] ^= int.from_bytes(self.codec.hash(item), "big")

    def merge(self, parts):
        out: dict[int, list[int]] = {}
        for p in parts:
            for cell, (n, x) in p.items():
                c = out.setdefault(cell, [0, 0])
                c[0] += n
                c[1] ^= x
        return out


class _Keys(_CellScan):
    """Pass 3: key -> (key, hash, source key) in the wanted cells, and keys seen twice (two records, one key)."""

    def __init__(self, buckets: int, cells: set[int], key_of, codec):
        super().__init__(buckets, key_of, codec)
        self.cells = cells

    def new(self):
        return {"keys": {}, "dups": {}}

    def add(self, acc, item):
        found = self.locate(item)
        if found is None:
            return
        item, key, src_key, kt, cell = found
        if cell in self.cells:
            if kt in acc["keys"]:
                acc["dups"].setdefault(kt, [acc["keys"][kt][2]]).append(src_key)
            acc["keys"][kt] = (key, self.codec.hash(item), src_key)

    def merge(self, parts):
        out = self.new()
        for p in parts:
            for kt, v in p["keys"].items():
                if kt in out["keys"]:  # seen in another part too: both parts' source keys
                    prev = out["dups"].get(kt) or [out["keys"][kt][2]]
                    out["dups"][kt] = prev + [s for s in (p["dups"].get(kt) or [v[2]]) if s not in prev]
                elif kt in p["dups"]:
                    out["dups"][kt] = list(p["dups"][kt])
                out["keys"][kt] = v
        return out
