"""Reader for DynamoDB's native export to S3 (ExportTableToPointInTime, DYNAMODB_JSON format).

Two layouts are read: AWS's, where ``manifest-summary.json`` points at ``manifest-files.json`` (one
JSON object per line, each naming a ``data/*.json.gz`` file and its item count), and the layout
moto writes, with only ``AWSDynamoDB/<export-id>/data/*.gz`` and no manifests.
"""

from __future__ import annotations

import gzip
import json
from typing import Iterator

from ..codec import Item, item_from_json
from ..errors import RecordError, TurnoutError


def export_prefix(export_arn: str, s3_prefix: str, s3=None, bucket: str | None = None) -> str:
    """The export's directory. AWS names it after the ARN's export id; moto uses an unrelated id, so
    when s3 is given and the ARN's directory does not exist, the single export directory under the
    prefix is taken (Turnout starts each native export under a prefix of its own)."""
    base = f"{s3_prefix.strip('/')}/AWSDynamoDB/".lstrip("/")
    by_arn = base + export_arn.rsplit("/", 1)[-1] + "/"
    if s3 is None:
        return by_arn
    if s3.list_objects_v2(Bucket=bucket, Prefix=by_arn, MaxKeys=1).get("KeyCount", 0):
        return by_arn
    dirs = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
        dirs.update(base + o["Key"][len(base):].split("/", 1)[0] + "/" for o in page.get("Contents", []))
    if len(dirs) != 1:
        raise TurnoutError(f"cannot tell which export under s3://{bucket}/{base} belongs to {export_arn}: "
                           f"found {sorted(dirs) or 'none'}")
    return dirs.pop()


def list_data_files(s3, bucket: str, prefix: str) -> list[dict]:
    """Data files of one export: [{"key": ..., "items": n or None}], from the manifests when present."""
    summary_key = prefix + "manifest-summary.json"
    try:
        summary = json.loads(s3.get_object(Bucket=bucket, Key=summary_key)["Body"].read())
    except Exception as exc:
        if getattr(exc, "response", {}).get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        summary = None
    if summary is not None:
        if summary.get("outputFormat", "DYNAMODB_JSON") != "DYNAMODB_JSON":
            raise TurnoutError(f"export at s3://{bucket}/{prefix} is {summary['outputFormat']}; only DYNAMODB_JSON is read")
        mkey = summary.get("manifestFilesS3Key") or prefix + "manifest-files.json"
        body = s3.get_object(Bucket=bucket, Key=mkey)["Body"].read().decode()
        files = []
        for n, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                m = json.loads(line)
                files.append({"key": m["dataFileS3Key"], "items": int(m.get("itemCount", 0))})
            except (ValueError, KeyError) as exc:
                raise TurnoutError(f"s3://{bucket}/{mkey} line {n}: not a manifest entry ({exc})") from None
        return files
    # moto's layout: no manifests, just data files
    out = []
    pager = s3.get_paginator("list_objects_v2")
    for page in pager.paginate(Bucket=bucket, Prefix=prefix + "data/"):
        for o in page.get("Contents", []):
            if o["Key"].endswith(".gz"):
                out.append({"key": o["Key"], "items": None})
    if not out:
        raise TurnoutError(f"no export data files under s3://{bucket}/{prefix}")
    return sorted(out, key=lambda f: f["key"])


def read_data_file(s3, bucket: str, key: str) -> Iterator[Item]:
    raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    for n, line in enumerate(gzip.decompress(raw).splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            yield item_from_json(doc["Item"])
        except (ValueError, KeyError, RecordError) as exc:
            raise RecordError(f"s3://{bucket}/{key} line {n}: not a DynamoDB JSON export line ({exc})") from None
