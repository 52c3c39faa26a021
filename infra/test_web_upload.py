#!/usr/bin/env python3
"""What the deploy uploads is the web app's build output, with the local binary's cache rules.

Runs `infra/deploy.sh --upload-web` (the deploy's own last step) against moto's S3 and
CloudFront, builds the web app again independently with relay/web/build.mjs (the script
relay/build.rs runs for the binaries), and checks that the bucket holds exactly those files,
byte for byte, that content-hashed `/assets/*` carry relay/src/web.rs's ASSET_CACHE_CONTROL and
`index.html` its PAGE_CACHE_CONTROL, that `index.html` was invalidated, and that a build whose
page names a missing asset is refused before anything is uploaded.

usage: python infra/test_web_upload.py   (infra/check.sh, step `web`; needs moto:
       localstack/services.sh start and its env)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parent.parent
WEB_RS = REPO / "relay" / "src" / "web.rs"


def rust_constant(name: str) -> str:
    found = re.search(rf'pub const {name}: &str = "([^"]*)";', WEB_RS.read_text(encoding="utf-8"))
    if not found:
        raise AssertionError(f"{name} not found in {WEB_RS}")
    return found.group(1)


def build_web(out: Path) -> dict[str, bytes]:
    subprocess.run(["node", "build.mjs"], cwd=REPO / "relay" / "web", check=True,
                   env={**os.environ, "SUSHI_WEB_OUT": str(out)}, stdout=subprocess.DEVNULL, timeout=300)
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


class WebUpload(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        if not os.environ.get("AWS_ENDPOINT_URL"):
            raise unittest.SkipTest("AWS_ENDPOINT_URL is not set: start moto (localstack/services.sh)")
        cls.s3 = boto3.client("s3")
        cls.cloudfront = boto3.client("cloudfront")

    def bucket(self) -> str:
        name = f"sushi-web-check-{time.time_ns()}"
        self.s3.create_bucket(Bucket=name)
        return name

    def distribution(self, bucket: str) -> str:
        answer = self.cloudfront.create_distribution(DistributionConfig={
            "CallerReference": bucket, "Comment": "check", "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [{"Id": "web", "DomainName": f"{bucket}.s3.amazonaws.com",
                                                  "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
            "DefaultCacheBehavior": {"TargetOriginId": "web", "ViewerProtocolPolicy": "redirect-to-https"},
        })
        return answer["Distribution"]["Id"]

    def objects(self, bucket: str) -> dict[str, dict]:
        listed = self.s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: self.s3.get_object(Bucket=bucket, Key=o["Key"]) for o in listed}

    def test_the_deploy_uploads_the_web_build_with_the_local_cache_rules(self) -> None:
        bucket = self.bucket()
        distribution = self.distribution(bucket)
        subprocess.run([str(REPO / "infra" / "deploy.sh"), "--upload-web", bucket, distribution],
                       check=True, timeout=600)
        with tempfile.TemporaryDirectory() as out:
            built = build_web(Path(out))
        uploaded = self.objects(bucket)
        self.assertEqual(sorted(uploaded), sorted(built))
        self.assertIn("index.html", built)
        self.assertTrue([k for k in built if re.fullmatch(r"assets/app-[A-Za-z0-9]+\.js", k)], built.keys())
        asset_cache, page_cache = rust_constant("ASSET_CACHE_CONTROL"), rust_constant("PAGE_CACHE_CONTROL")
        for key, obj in uploaded.items():
            with self.subTest(key=key):
                self.assertEqual(obj["Body"].read(), built[key])
                want = asset_cache if key.startswith("assets/") else page_cache
                self.assertEqual(obj["CacheControl"], want)
                self.assertNotEqual(obj["ContentType"], "application/octet-stream")
        self.assertEqual(uploaded["index.html"]["ContentType"], "text/html; charset=utf-8")
        invalidations = self.cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]
        self.assertEqual(invalidations["Quantity"], 1)
        batch = self.cloudfront.get_invalidation(
            DistributionId=distribution, Id=invalidations["Items"][0]["Id"])["Invalidation"]["InvalidationBatch"]
        self.assertIn("/index.html", batch["Paths"]["Items"])

    def test_a_page_naming_a_missing_asset_is_refused_before_any_upload(self) -> None:
        bucket = self.bucket()
        with tempfile.TemporaryDirectory() as out:
            build_web(Path(out))
            for asset in (Path(out) / "assets").glob("app-*.js"):
                asset.unlink()
            run = subprocess.run([sys.executable, str(REPO / "infra" / "web_upload.py"), "--dir", out,
                                  "--bucket", bucket], capture_output=True, text=True, timeout=120)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("names assets the build lacks", run.stderr)
        self.assertEqual(self.objects(bucket), {})


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() and not result.skipped else 1)
