"""One-shot (the compose service s3-init): creates the bucket of TURNOUT_STAGING (s3://bucket/prefix) on
the S3 endpoint S3_ENDPOINT_URL. Idempotent: an existing bucket is left as it is."""

import os
import sys
from urllib.parse import urlparse

import boto3


def main() -> int:
    url = urlparse(os.environ["TURNOUT_STAGING"])
    if url.scheme != "s3" or not url.netloc:
        print(f"create_staging_bucket: TURNOUT_STAGING must be s3://bucket/prefix, got {url.geturl()!r}",
              file=sys.stderr)
        return 2
    s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"],
                      region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                      aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                      aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"))
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if url.netloc not in existing:
        s3.create_bucket(Bucket=url.netloc)
    print(f"create_staging_bucket: s3://{url.netloc} ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
