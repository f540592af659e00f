"""One object-storage abstraction for everything that crosses tasks.

Export chunks, the change log, checkpoints, dead letters and reports all go through :class:`Staging`.
``s3://bucket/prefix`` in production (any worker can read what another wrote); a local path for the
embedded single-machine default. Writes are whole-object and atomic on both: a reader sees the old
object or the new one, never half of one, so a checkpoint written after a chunk is a true statement.
"""

from __future__ import annotations

import builtins
import fcntl
import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import msgspec

from .errors import StagingError

_LINE_DECODER = msgspec.json.Decoder()


class Staging:
    """Keys are '/'-separated relative paths under the migration's root."""

    url: str

    def put_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def list(self, prefix: str) -> builtins.list[str]:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    # conditional writes: the fence of every staging writer (see turnout.fencing)
    def get_tagged(self, key: str) -> tuple[bytes | None, str | None]:
        """(content, etag), or (None, None) when absent."""
        raise NotImplementedError

    def put_if(self, key: str, data: bytes, etag: str | None) -> str | None:
        """Write only if the object still has ``etag`` (``None``: only if it does not exist). Returns the new
        etag, or ``None`` when the condition failed (nothing was written)."""
        raise NotImplementedError

    def put_new(self, key: str, data: bytes) -> bool:
        """Write an immutable object: True if written, False if it already existed (left as it was)."""
        return self.put_if(key, data, None) is not None

    # helpers shared by both backends
    def put_json(self, key: str, doc: Any) -> None:
        self.put_bytes(key, json.dumps(doc, sort_keys=True, default=str).encode())

    def get_json(self, key: str, default: Any = None) -> Any:
        if not self.exists(key):
            return default
        return json.loads(self.get_bytes(key))

    def put_jsonl_gz(self, key: str, rows: builtins.list[dict], *, new: bool = False) -> int:
        """Write gzipped JSON lines; returns the size. ``new=True``: an immutable file, written only if it does not
        exist yet (returns -1 and leaves it as it was if it does)."""
        body = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in rows)
        data = gzip.compress(body.encode(), compresslevel=3)
        if new:
            return len(data) if self.put_new(key, data) else -1
        self.put_bytes(key, data)
        return len(data)

    def iter_jsonl_gz(self, key: str) -> Iterator[dict]:
        return self.parse_jsonl_gz(key, self.get_bytes(key))

    def parse_jsonl_gz(self, key: str, data: bytes) -> Iterator[dict]:
        """Each line's JSON value. msgspec parses a line where it can (the same value json.loads gives); a line it
        refuses (NaN, 1e400, a lone surrogate...) is parsed by json.loads, whose answer or error then stands."""
        raw = gzip.decompress(data)
        decode = _LINE_DECODER.decode
        for n, line in enumerate(raw.splitlines(), 1):
            try:
                doc = decode(line)
            except msgspec.DecodeError:
                pass
            else:
                yield doc
                continue
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise StagingError(f"{self.url}/{key} line {n}: not JSON ({exc})") from exc

    def child(self, prefix: str) -> "Staging":
        return _Prefixed(self, prefix.strip("/"))


class _Prefixed(Staging):
    def __init__(self, base: Staging, prefix: str):
        self.base, self.prefix = base, prefix
        self.url = f"{base.url.rstrip('/')}/{prefix}"

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def put_bytes(self, key, data):
        self.base.put_bytes(self._k(key), data)

    def get_bytes(self, key):
        return self.base.get_bytes(self._k(key))

    def exists(self, key):
        return self.base.exists(self._k(key))

    def list(self, prefix):
        n = len(self.prefix) + 1
        return [k[n:] for k in self.base.list(self._k(prefix))]

    def delete(self, key):
        self.base.delete(self._k(key))

    def get_tagged(self, key):
        return self.base.get_tagged(self._k(key))

    def put_if(self, key, data, etag):
        return self.base.put_if(self._k(key), data, etag)


class LocalStaging(Staging):
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()
        self.url = str(self.root)

    def _p(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root not in p.parents and p != self.root:
            raise StagingError(f"staging key {key!r} escapes {self.root}")
        return p

    def put_bytes(self, key, data):
        p = self._p(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key):
        try:
            return self._p(key).read_bytes()
        except FileNotFoundError as exc:
            raise StagingError(f"not in staging: {self.url}/{key}") from exc

    def exists(self, key):
        return self._p(key).is_file()

    def list(self, prefix):
        base = self._p(prefix) if prefix else self.root
        # a prefix names a directory ("changelog/") or the start of names in one ("export/seg-0"): walk only what
        # can match, never the whole root (a missing "deadletter/" must not walk a change log of 100k files)
        if prefix.endswith("/") or not prefix:
            tops = [base] if base.is_dir() else []
        else:
            parent = base.parent
            tops = [e for e in parent.iterdir() if e.name.startswith(base.name)] if parent.is_dir() else []
        out = []
        for top in tops:
            walk = os.walk(top) if top.is_dir() else [(str(top.parent), [], [top.name])]
            for dirpath, _dirs, files in walk:
                for f in files:
                    if f.startswith(".tmp-"):
                        continue
                    rel = str(Path(dirpath, f).relative_to(self.root))
                    if rel.startswith(prefix):
                        out.append(rel)
        return sorted(out)

    def delete(self, key):
        self._p(key).unlink(missing_ok=True)

    def _lock(self):
        """One lock file for the conditional writes of every process on this machine (flock)."""
        self.root.mkdir(parents=True, exist_ok=True)
        f = open(self.root / ".tmp-conditional.lock", "a+b")
        fcntl.flock(f, fcntl.LOCK_EX)
        return f

    def get_tagged(self, key):
        try:
            data = self._p(key).read_bytes()
        except FileNotFoundError:
            return None, None
        return data, hashlib.md5(data).hexdigest()

    def put_if(self, key, data, etag):
        with self._lock():
            _now, tag = self.get_tagged(key)
            if tag != etag:
                return None
            self.put_bytes(key, data)
            return hashlib.md5(data).hexdigest()


class S3Staging(Staging):
    def __init__(self, bucket: str, prefix: str, client):
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), client
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key, data):
        self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data)

    def get_bytes(self, key):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._k(key))["Body"].read()
        except self.client.exceptions.NoSuchKey as exc:
            raise StagingError(f"not in staging: {self.url}/{key}") from exc

    def exists(self, key):
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._k(key))
            return True
        except Exception as exc:  # botocore ClientError 404
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def list(self, prefix):
        out, n = [], len(self.prefix) + 1 if self.prefix else 0
        pager = self.client.get_paginator("list_objects_v2")
        for page in pager.paginate(Bucket=self.bucket, Prefix=self._k(prefix)):
            out.extend(o["Key"][n:] for o in page.get("Contents", []))
        return sorted(out)

    def delete(self, key):
        self.client.delete_object(Bucket=self.bucket, Key=self._k(key))

    def get_tagged(self, key):
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self._k(key))
        except self.client.exceptions.NoSuchKey:
            return None, None
        return r["Body"].read(), r["ETag"]

    def put_if(self, key, data, etag):
        cond = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            return self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data, **cond)["ETag"]
        except Exception as exc:  # botocore ClientError: 412 PreconditionFailed, 409 ConditionalRequestConflict
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return None
            if code == "NoSuchKey" and etag is not None:  # If-Match on an object deleted meanwhile
                return None
            raise


def open_staging(url: str, s3_client_factory: Callable[[], Any] | None = None) -> Staging:
    """``s3://bucket/prefix`` -> S3Staging (client from the factory); anything else is a local path."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise StagingError(f"staging url {url!r} names no bucket")
        if s3_client_factory is None:
            import boto3

            s3_client_factory = lambda: boto3.client("s3")  # noqa: E731
        return S3Staging(bucket, prefix, s3_client_factory())
    if url.startswith("file://"):
        url = url[7:]
    return LocalStaging(url)
