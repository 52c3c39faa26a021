#!/usr/bin/env bash
# Deploy the Lambda path (api-fn from its cargo lambda zip, behind a function URL, with its
# DynamoDB table and KMS key) into LocalStack with the plain AWS CLI and an endpoint override,
# for users who want to run the real Lambda artifact locally. The same calls work against any
# AWS-compatible endpoint; infra/check.sh runs `up`/`down` and a failed `up` against moto.
#
# usage:
#   localstack/deploy.sh up       create table + key (provision.py), role, function, function URL
#   localstack/deploy.sh down     delete everything `up` created
#   localstack/deploy.sh stack PARAMS.json
#                                 the full SAM stack (infra/template.yaml) via infra/deploy.sh;
#                                 needs LocalStack Pro (ECS, ElastiCache, ELBv2, API Gateway v2,
#                                 CloudFront); it also builds and uploads the web app
#
# environment:
#   AWS_ENDPOINT_URL  endpoint (default http://localhost:4566, LocalStack's edge port)
#   NAME              resource name prefix (default sushi-local)
#   JWT_SECRET        HS256 secret for the function (required; e.g. $(openssl rand -hex 32))
#   LAMBDA_ZIP        artifact (default target/lambda/api-fn/bootstrap.zip, from
#                     `cargo lambda build --profile lambda --arm64 --output-format zip -p api-fn
#                     --no-default-features --features aws`)
#   LAMBDA_ARCH       arm64 | x86_64 (default arm64; must match the build)
#   SMOKE_TEST        1 (default) to GET /health through the function URL after deploying;
#                     0 where the endpoint cannot run functions (moto)
#   DEPLOY_FAIL_AFTER for tests only: fail on purpose after this step, to prove the cleanup
#
# `up` stops at the first failing step with a message naming it, and removes what this run
# created (never what existed before it), in reverse order.
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state_dir=${SUSHI_STATE_DIR:-$repo/.local}
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://localhost:4566}
export AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
export AWS_DEFAULT_REGION=$AWS_REGION
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_PAGER=""
NAME=${NAME:-sushi-local}
function_name=$NAME-api-fn
role_name=$NAME-api-fn
table=$NAME
alias_name=alias/$NAME
LAMBDA_ZIP=${LAMBDA_ZIP:-$repo/target/lambda/api-fn/bootstrap.zip}
LAMBDA_ARCH=${LAMBDA_ARCH:-arm64}
SMOKE_TEST=${SMOKE_TEST:-1}

step=preflight
created=()   # what this run created, in order; cleanup walks it backwards

log() { echo "[deploy] $*" >&2; }
die() { echo "[deploy] error: $*" >&2; exit 1; }

aws_cli() {
  if [ -n "${AWS_CLI:-}" ]; then "$AWS_CLI" "$@"
  elif [ -x "$state_dir/venv-awscli/bin/aws" ]; then "$state_dir/venv-awscli/bin/aws" "$@"
  else aws "$@"
  fi
}

python_with_boto3() {
  local py
  for py in "${SUSHI_PYTHON:-}" "$state_dir/venv/bin/python" python3; do
    [ -n "$py" ] && command -v "$py" >/dev/null 2>&1 && "$py" -c 'import boto3' 2>/dev/null \
      && { echo "$py"; return 0; }
  done
  return 1
}

provision() { "$python" "$repo/localstack/provision.py" --table "$table" --alias "$alias_name" "$@"; }

cleanup() {
  local i item
  for ((i = ${#created[@]} - 1; i >= 0; i--)); do
    item=${created[$i]}
    log "cleanup: removing $item"
    case "$item" in
      function-url) aws_cli lambda delete-function-url-config --function-name "$function_name" >/dev/null 2>&1 || true ;;
      function) aws_cli lambda delete-function --function-name "$function_name" >/dev/null 2>&1 || true ;;
      role) aws_cli iam delete-role --role-name "$role_name" >/dev/null 2>&1 || true ;;
      data) provision --destroy >/dev/null 2>&1 || true ;;
    esac
  done
}

on_error() {
  local code=$?
  trap - ERR
  echo "[deploy] error: step '$step' failed (exit $code) against $AWS_ENDPOINT_URL" >&2
  if [ ${#created[@]} -gt 0 ]; then
    log "removing what this run created: ${created[*]}"
    cleanup
  else
    log "nothing was created"
  fi
  exit "$code"
}

checkpoint() { # step name; the test hook fails here on request
  if [ "${DEPLOY_FAIL_AFTER:-}" = "$1" ]; then
    log "DEPLOY_FAIL_AFTER=$1: failing on purpose"
    false
  fi
}

up() {
  trap on_error ERR
  [ -n "${JWT_SECRET:-}" ] || die "JWT_SECRET is not set (e.g. export JWT_SECRET=\$(openssl rand -hex 32))"
  [ -f "$LAMBDA_ZIP" ] || die "LAMBDA_ZIP $LAMBDA_ZIP not found; build it with: cargo lambda build --profile lambda --arm64 --output-format zip -p api-fn --no-default-features --features aws"
  case "$LAMBDA_ARCH" in arm64 | x86_64) ;; *) die "LAMBDA_ARCH=$LAMBDA_ARCH must be arm64 or x86_64" ;; esac
  python=$(python_with_boto3) || die "no Python with boto3 (run localstack/services.sh install, or set SUSHI_PYTHON)"
  aws_cli --version >/dev/null 2>&1 || die "the AWS CLI is missing: pip install -r localstack/requirements-deploy.txt"
  aws_cli sts get-caller-identity >/dev/null 2>&1 || die "cannot reach $AWS_ENDPOINT_URL (is LocalStack up?)"
  if aws_cli lambda get-function --function-name "$function_name" >/dev/null 2>&1; then
    die "$function_name already exists; run '$0 down' first"
  fi

  step="provision table and key"
  local had_table=0 had_alias=0
  aws_cli dynamodb describe-table --table-name "$table" >/dev/null 2>&1 && had_table=1
  aws_cli kms describe-key --key-id "$alias_name" >/dev/null 2>&1 && had_alias=1
  local ids
  ids=$(provision)
  [ $had_table = 0 ] && [ $had_alias = 0 ] && created+=(data)
  local key_id
  key_id=$(sed -n 's/^KMS_KEY_ID=//p' <<<"$ids")
  checkpoint provision

  step="create role $role_name"
  local role_arn
  role_arn=$(aws_cli iam create-role --role-name "$role_name" \
    --assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}' \
    --query Role.Arn --output text)
  created+=(role)
  checkpoint role

  step="create function $function_name"
  local env_file
  env_file=$(mktemp)
  # shellcheck disable=SC2064  # expand now: the path is fixed for this run
  trap "rm -f '$env_file'" EXIT
  local audit_table
  audit_table=$(sed -n 's/^AUDIT_TABLE=//p' <<<"$ids")
  "$python" - "$env_file" "$table" "$alias_name" "$audit_table" <<'PY'
import json, os, sys
path, table, alias, audit_table = sys.argv[1:5]
variables = {
    "DYNAMODB_TABLE": table,
    "AUDIT_TABLE": audit_table,
    "KMS_KEY_ID": alias,
    "JWT_SECRET": os.environ["JWT_SECRET"],
    "LOG_FORMAT": "json",
    "RUST_LOG": "info",
    "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH": "true",
}
with open(path, "w") as f:
    json.dump({"Variables": variables}, f)
PY
  aws_cli lambda create-function --function-name "$function_name" \
    --runtime provided.al2023 --handler bootstrap --architectures "$LAMBDA_ARCH" \
    --zip-file "fileb://$LAMBDA_ZIP" --role "$role_arn" --timeout 29 --memory-size 256 \
    --environment "file://$env_file" >/dev/null
  created+=(function)
  aws_cli lambda wait function-active-v2 --function-name "$function_name"
  checkpoint function

  step="create function URL"
  local url
  url=$(aws_cli lambda create-function-url-config --function-name "$function_name" \
    --auth-type NONE --query FunctionUrl --output text)
  created+=(function-url)
  aws_cli lambda add-permission --function-name "$function_name" --statement-id public-url \
    --action lambda:InvokeFunctionUrl --principal '*' --function-url-auth-type NONE >/dev/null
  url=${url%/}
  checkpoint url

  if [ "$SMOKE_TEST" = 1 ]; then
    step="smoke test GET $url/health"
    local body
    body=$(curl -fsS --max-time 60 "$url/health")
    grep -q '"status":"OK"' <<<"$body" || { log "unexpected /health answer: $body"; false; }
  fi

  trap - ERR
  mkdir -p "$state_dir"
  printf 'API_URL=%s\nFUNCTION_NAME=%s\nDYNAMODB_TABLE=%s\nKMS_KEY_ID=%s\n' \
    "$url" "$function_name" "$table" "$key_id" | tee "$state_dir/deploy-$NAME.env"
  log "deployed; mint a token with: JWT_SECRET=... target/debug/api-fn token --email you@example.com"
}

down() {
  python=$(python_with_boto3) || die "no Python with boto3 (set SUSHI_PYTHON)"
  created=(data role function function-url)
  cleanup
  rm -f "$state_dir/deploy-$NAME.env"
  log "removed $function_name, its role, table $table and $alias_name"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  stack)
    shift
    exec "$repo/infra/deploy.sh" "$@"
    ;;
  *) echo "usage: $0 up|down|stack PARAMS.json" >&2; exit 2 ;;
esac
