"""DynamoDB's native export (ExportTableToPointInTime) files in S3: locate, list and read them."""

from __future__ import annotations

import gzip
import json
from typing import Iterator

from ...codec import Item, item_from_json
from ...errors import RecordError, TurnoutError


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
    dirs: set[str] = set()
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


class DynamoDBNativeExport:
    """The :class:`turnout.ports.NativeExport` of DynamoDB: ExportTableToPointInTime into S3, then its data files.

    :param source: the source table (its client starts and describes the export)
    :param export: the spec's ``export`` section (bucket, prefix, or an export ARN to reuse)
    :param s3_client_factory: builds an S3 client with the source connection's credentials
    """

    def __init__(self, source, export, migration: str, s3_client_factory):
        self.source, self.export, self.migration, self.s3_factory = source, export, migration, s3_client_factory

    def start(self, plan: dict, now: float) -> str:
        e = self.export
        if e.native_export_arn:
            return e.native_export_arn
        desc = self.source.describe_table()
        resp = self.source.client.export_table_to_point_in_time(
            TableArn=desc["TableArn"], S3Bucket=e.native_s3_bucket,
            S3Prefix=f"{e.native_s3_prefix.strip('/')}/{self.migration}/{int(plan['recorded_at'])}",
            ExportFormat="DYNAMODB_JSON", ExportTime=max(plan["recorded_at"], now))
        return resp["ExportDescription"]["ExportArn"]

    def poll(self, plan: dict) -> dict:
        d = self.source.client.describe_export(ExportArn=plan["native_arn"])["ExportDescription"]
        status = d["ExportStatus"]
        if status == "FAILED":
            raise TurnoutError(f"native export {plan['native_arn']} failed: {d.get('FailureCode')} "
                               f"{d.get('FailureMessage')}")
        if status != "COMPLETED":
            return {"status": status}
        bucket = d.get("S3Bucket") or self.export.native_s3_bucket
        s3 = self.s3_factory()
        prefix = export_prefix(plan["native_arn"], d.get("S3Prefix") or self.export.native_s3_prefix, s3, bucket)
        return {"status": status, "files": list_data_files(s3, bucket, prefix), "bucket": bucket}

    def read_file(self, plan: dict, file: dict) -> Iterator[Item]:
        return read_data_file(self.s3_factory(), plan["native_bucket"], file["key"])
