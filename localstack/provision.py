#!/usr/bin/env python3
"""Provision the DynamoDB tables and KMS key sushi needs, against any AWS-compatible endpoint.

The table's schema is defined once, by the `Table` resource of infra/template.yaml, and read
from it here: its AttributeDefinitions, KeySchema and BillingMode, server-side encryption when
SSESpecification turns it on, and TTL on TimeToLiveSpecification's attribute (today: `PK` (S)
hash key, `SK` (S) range key, on-demand, SSE, TTL on `ttl`). The template's stack-only settings
(its table name, its own KMS key for SSE, deletion protection, point-in-time recovery) are not
copied. The audit log's table is made the same way from the template's `AuditTable` resource
(`PK` (S) hash key, `SK` (N) range key, no TTL), named by --audit-table (default: the table's
name with `-audit`). The template is $SUSHI_TABLE_TEMPLATE if set, else `template.yaml` beside this script
(where the LocalStack container mounts it), else ../infra/template.yaml relative to it. An
existing table must have the template's key schema. The key is a symmetric KMS key with
rotation on, reached through its alias.

One script for every place the stack runs: the moto server the tests use, LocalStack's
`ready.d` init hook, and a real AWS account. It is idempotent (an existing table or alias is
reused, never recreated) and honours AWS_ENDPOINT_URL, so the same call works everywhere.

stdout carries only machine-readable lines, one per line, for `eval` or `>> .env`:
    DYNAMODB_TABLE=<table name>
    AUDIT_TABLE=<audit table name>
    KMS_KEY_ID=<key id>
Progress and errors go to stderr. Exit status: 0 on success, 1 on a provisioning error,
2 on bad usage.

usage:
    provision.py [--table NAME] [--audit-table NAME] [--alias alias/NAME] [--endpoint-url URL] [--region R]
                 [--ttl-attribute ATTR (default: the template's, ttl)] [--export] [--wait SECONDS]
    provision.py --destroy [--table NAME] [--audit-table NAME] [--alias alias/NAME]   # delete what provision made
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

try:
    import boto3
    import yaml
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as missing:  # pragma: no cover - a setup error, say so plainly
    sys.stderr.write(
        f"provision.py: {missing.name} is not installed; "
        "run `pip install -r localstack/requirements.txt`\n"
    )
    sys.exit(1)

DEFAULT_TABLE = "sushi"
DEFAULT_ALIAS = "alias/sushi"
KEY_DESCRIPTION = "sushi machine secrets (data keys bound to purpose=sushi-machine-secrets)"


HERE = Path(__file__).resolve().parent
TABLE_RESOURCE = "Table"
AUDIT_TABLE_RESOURCE = "AuditTable"


def log(msg: str) -> None:
    sys.stderr.write(f"[provision] {msg}\n")
    sys.stderr.flush()


class ProvisionError(Exception):
    """A failure with a one-line, human-readable explanation."""


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short-form tags (!Sub, !Ref, !GetAtt, ...) as the
    plain scalar, list or mapping they wrap: the table's schema never depends on them."""


def _construct_tagged(loader: CfnLoader, _suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


CfnLoader.add_multi_constructor("!", _construct_tagged)


def template_path() -> Path:
    env = os.environ.get("SUSHI_TABLE_TEMPLATE")
    if env:
        return Path(env)
    for candidate in (HERE / "template.yaml", HERE.parent / "infra" / "template.yaml"):
        if candidate.is_file():
            return candidate
    raise ProvisionError(
        f"no table template: set SUSHI_TABLE_TEMPLATE, or put template.yaml beside {HERE / 'provision.py'}"
        f" (tried {HERE / 'template.yaml'} and {HERE.parent / 'infra' / 'template.yaml'})"
    )


def table_spec(path: Path, resource_name: str = TABLE_RESOURCE) -> dict:
    """The create_table arguments and TTL attribute from the template's table resource."""
    try:
        doc = yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError) as err:
        raise ProvisionError(f"cannot read table template {path}: {err}") from err
    resource = ((doc or {}).get("Resources") or {}).get(resource_name) or {}
    if resource.get("Type") != "AWS::DynamoDB::Table":
        raise ProvisionError(f"{path}: no AWS::DynamoDB::Table resource named {resource_name!r}")
    props = resource.get("Properties") or {}
    attributes = [
        {"AttributeName": str(a["AttributeName"]), "AttributeType": str(a["AttributeType"])}
        for a in props.get("AttributeDefinitions") or []
    ]
    keys = [
        {"AttributeName": str(k["AttributeName"]), "KeyType": str(k["KeyType"])}
        for k in props.get("KeySchema") or []
    ]
    defined = {a["AttributeName"] for a in attributes}
    if not keys or not {k["AttributeName"] for k in keys} <= defined:
        raise ProvisionError(f"{path}: {resource_name} has no key schema over its AttributeDefinitions")
    create = {
        "AttributeDefinitions": attributes,
        "KeySchema": keys,
        "BillingMode": str(props.get("BillingMode") or "PROVISIONED"),
    }
    if create["BillingMode"] == "PROVISIONED":
        throughput = props.get("ProvisionedThroughput") or {}
        create["ProvisionedThroughput"] = {
            "ReadCapacityUnits": int(throughput.get("ReadCapacityUnits", 1)),
            "WriteCapacityUnits": int(throughput.get("WriteCapacityUnits", 1)),
        }
    sse = props.get("SSESpecification") or {}
    if sse.get("SSEEnabled"):
        # The stack's own KMS key (a !Ref) exists only in the stack: the AWS-managed key here.
        create["SSESpecification"] = {"Enabled": True, "SSEType": str(sse.get("SSEType") or "KMS")}
    ttl = props.get("TimeToLiveSpecification") or {}
    ttl_attribute = str(ttl["AttributeName"]) if ttl.get("Enabled") and ttl.get("AttributeName") else ""
    return {"create": create, "ttl_attribute": ttl_attribute, "source": path}


def describe_keys(keys) -> str:
    return " + ".join(f"{name} ({kind})" for name, kind in keys) or "none"


def client(service: str, args: argparse.Namespace):
    kwargs = {
        "config": Config(
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
    }
    if args.endpoint_url:
        kwargs["endpoint_url"] = args.endpoint_url
    if args.region:
        kwargs["region_name"] = args.region
    return boto3.client(service, **kwargs)


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def ensure_table(ddb, name: str, spec: dict, ttl_attribute: str | None, wait_s: float) -> None:
    create = spec["create"]
    want = [(k["AttributeName"], k["KeyType"]) for k in create["KeySchema"]]
    try:
        desc = ddb.describe_table(TableName=name)["Table"]
        log(f"table {name} exists ({desc.get('TableStatus')})")
        keys = [(k["AttributeName"], k["KeyType"]) for k in desc.get("KeySchema", [])]
        if sorted(keys) != sorted(want):
            raise ProvisionError(
                f"table {name} exists with key schema {describe_keys(keys)}; "
                f"{spec['source']} declares {describe_keys(want)}"
            )
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        log(f"creating table {name} as {spec['source']} declares it: key "
            f"{describe_keys(want)}, {create['BillingMode']}")
        try:
            ddb.create_table(TableName=name, **create, Tags=[{"Key": "app", "Value": "sushi"}])
        except ClientError as create_err:
            # Another provisioner won the race: that is the idempotent outcome we want.
            if error_code(create_err) != "ResourceInUseException":
                raise
    deadline = time.monotonic() + wait_s
    while True:
        status = ddb.describe_table(TableName=name)["Table"].get("TableStatus")
        if status == "ACTIVE":
            break
        if time.monotonic() > deadline:
            raise ProvisionError(f"table {name} still {status} after {wait_s:.0f}s")
        time.sleep(1)
    if ttl_attribute:
        current = ddb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
        if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            if current.get("AttributeName") != ttl_attribute:
                raise ProvisionError(
                    f"table {name} already has TTL on {current.get('AttributeName')!r}, "
                    f"not {ttl_attribute!r}"
                )
        else:
            log(f"enabling TTL on attribute {ttl_attribute}")
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
            )


def ensure_key(kms, alias: str) -> str:
    try:
        meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
        state = meta.get("KeyState")
        if state != "Enabled":
            raise ProvisionError(f"{alias} points at key {meta['KeyId']} in state {state}")
        log(f"{alias} exists -> key {meta['KeyId']}")
        return str(meta["KeyId"])
    except ClientError as err:
        if error_code(err) != "NotFoundException":
            raise
    log(f"creating KMS key for {alias}")
    key_id = str(
        kms.create_key(
            Description=KEY_DESCRIPTION,
            KeyUsage="ENCRYPT_DECRYPT",
            KeySpec="SYMMETRIC_DEFAULT",
            Tags=[{"TagKey": "app", "TagValue": "sushi"}],
        )["KeyMetadata"]["KeyId"]
    )
    try:
        kms.enable_key_rotation(KeyId=key_id)
    except ClientError as err:  # rotation is best effort on emulators that lack it
        log(f"could not enable rotation on {key_id}: {error_code(err)}")
    try:
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        return key_id
    except ClientError as err:
        if error_code(err) != "AlreadyExistsException":
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
            raise
    # Lost a race with another provisioner: keep theirs, retire ours so nothing is left behind.
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"])


def destroy(ddb, kms, tables: list[str], alias: str) -> None:
    for table in tables:
        try:
            ddb.delete_table(TableName=table)
            log(f"deleted table {table}")
        except ClientError as err:
            if error_code(err) != "ResourceNotFoundException":
                raise
            log(f"table {table} already absent")
    try:
        key_id = kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
    except ClientError as err:
        if error_code(err) != "NotFoundException":
            raise
        log(f"{alias} already absent")
        return
    kms.delete_alias(AliasName=alias)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    log(f"deleted {alias}; key {key_id} scheduled for deletion in 7 days")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", default=os.environ.get("DYNAMODB_TABLE") or DEFAULT_TABLE,
                   help="table name (default: $DYNAMODB_TABLE or sushi)")
    p.add_argument("--audit-table", default=os.environ.get("AUDIT_TABLE") or None,
                   help="the audit log's table (default: $AUDIT_TABLE, else the table's name "
                        "with -audit)")
    p.add_argument("--alias", default=os.environ.get("KMS_KEY_ALIAS") or DEFAULT_ALIAS,
                   help="KMS alias (default: $KMS_KEY_ALIAS or alias/sushi)")
    p.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL") or None,
                   help="AWS-compatible endpoint (default: $AWS_ENDPOINT_URL, else real AWS)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION")
                   or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    p.add_argument("--ttl-attribute", default=None,
                   help="enable DynamoDB TTL on this attribute (default: the template's "
                        "TimeToLiveSpecification, ttl, as the master-password failure windows "
                        "use; '' to leave TTL off)")
    p.add_argument("--export", action="store_true", help="prefix output lines with 'export '")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for ACTIVE table")
    p.add_argument("--destroy", action="store_true",
                   help="delete the table and alias, schedule the key for deletion")
    args = p.parse_args(argv)
    if not args.alias.startswith("alias/") or args.alias.startswith("alias/aws/"):
        p.error(f"--alias {args.alias!r} must start with 'alias/' and not 'alias/aws/'")
    if not (3 <= len(args.table) <= 255):
        p.error(f"--table {args.table!r} must be 3-255 characters")
    args.audit_table = args.audit_table or f"{args.table}-audit"
    if not (3 <= len(args.audit_table) <= 255) or args.audit_table == args.table:
        p.error(f"--audit-table {args.audit_table!r} must be 3-255 characters and not the table")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    where = args.endpoint_url or f"AWS {args.region}"
    try:
        ddb = client("dynamodb", args)
        kms = client("kms", args)
        if args.destroy:
            destroy(ddb, kms, [args.table, args.audit_table], args.alias)
            return 0
        spec = table_spec(template_path())
        ttl_attribute = spec["ttl_attribute"] if args.ttl_attribute is None else args.ttl_attribute
        ensure_table(ddb, args.table, spec, ttl_attribute, args.wait)
        audit_spec = table_spec(template_path(), AUDIT_TABLE_RESOURCE)
        ensure_table(ddb, args.audit_table, audit_spec, None, args.wait)
        key_id = ensure_key(kms, args.alias)
    except ProvisionError as err:
        log(f"error: {err}")
        return 1
    except ClientError as err:
        log(f"error from {where}: {error_code(err)}: {err.response.get('Error', {}).get('Message', err)}")
        return 1
    except BotoCoreError as err:
        log(f"error talking to {where}: {err}")
        return 1
    prefix = "export " if args.export else ""
    sys.stdout.write(
        f"{prefix}DYNAMODB_TABLE={args.table}\n{prefix}AUDIT_TABLE={args.audit_table}\n"
        f"{prefix}KMS_KEY_ID={key_id}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
