#!/usr/bin/env python3
"""Upload the built web app (relay/web's build output) to the stack's private web bucket and
invalidate the page that names the assets: the last step of infra/deploy.sh.

Why it is shaped so:
* The asset names are content-hashed (relay/web/build.mjs), so `/assets/*` is uploaded with a
  one-year immutable Cache-Control and never needs an invalidation; `index.html` is uploaded
  with `no-cache` and invalidated (with `/`), so a new build is visible at once. The two values
  are relay/src/web.rs's, so the local binary and CloudFront answer alike
  (infra/test_web_upload.py checks both).
* Assets go first and `index.html` last, so at no moment does the live page name a file the
  bucket lacks. Older hashed assets are left in place: a browser holding the previous page can
  still load them.
* The upload refuses a build whose `index.html` names an asset the directory does not contain.

usage: web_upload.py --dir BUILD_DIR --bucket BUCKET [--distribution-id ID]
Honours AWS_ENDPOINT_URL (moto, LocalStack). Prints one JSON line: the uploaded keys and the
invalidation id.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config

ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"
PAGE_CACHE_CONTROL = "no-cache"
# The local server's table (relay/src/web.rs, content_type).
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "json": "application/json",
    "map": "application/json",
    "svg": "image/svg+xml",
    "png": "image/png",
    "ico": "image/x-icon",
    "woff2": "font/woff2",
    "txt": "text/plain; charset=utf-8",
}
# Bounded calls: a hung endpoint fails the deploy instead of stalling it.
CLIENT_CONFIG = Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 3})


def content_type(key: str) -> str:
    return CONTENT_TYPES.get(key.rsplit(".", 1)[-1] if "." in key else "", "application/octet-stream")


def cache_control(key: str) -> str:
    return ASSET_CACHE_CONTROL if key.startswith("assets/") else PAGE_CACHE_CONTROL


def plan(build: Path) -> list[str]:
    """The keys to upload, assets first and index.html last; raises on an inconsistent build."""
    index = build / "index.html"
    if not index.is_file():
        raise SystemExit(f"{build} has no index.html: build the web app first (node relay/web/build.mjs)")
    keys = sorted(p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file())
    named = set(re.findall(r'"/(assets/[^"\s]+)"', index.read_text(encoding="utf-8")))
    missing = sorted(named - set(keys))
    if not named or missing:
        raise SystemExit(f"index.html names assets the build lacks: {missing or 'none named'}")
    return [k for k in keys if k != "index.html"] + ["index.html"]


def upload(build: Path, bucket: str, keys: list[str]) -> None:
    s3 = boto3.client("s3", config=CLIENT_CONFIG)
    for key in keys:
        s3.upload_file(
            str(build / key),
            bucket,
            key,
            ExtraArgs={"ContentType": content_type(key), "CacheControl": cache_control(key)},
        )


def invalidate(distribution_id: str) -> str:
    cloudfront = boto3.client("cloudfront", config=CLIENT_CONFIG)
    answer = cloudfront.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": 2, "Items": ["/index.html", "/"]},
            "CallerReference": f"sushi-web-{time.time_ns()}",
        },
    )
    return answer["Invalidation"]["Id"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=Path, help="the web build output")
    parser.add_argument("--bucket", required=True, help="the stack's WebBucketName output")
    parser.add_argument("--distribution-id", default="", help="the stack's DistributionId output")
    args = parser.parse_args(argv)
    keys = plan(args.dir)
    upload(args.dir, args.bucket, keys)
    invalidation = invalidate(args.distribution_id) if args.distribution_id else None
    print(json.dumps({"bucket": args.bucket, "uploaded": keys, "invalidation": invalidation}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
