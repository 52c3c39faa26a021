#!/usr/bin/env bash
# Deploy (or update) the sushi stack from infra/template.yaml with the SAM CLI: the one deploy
# command of infra/README.md. With AWS_ENDPOINT_URL set, the same command targets LocalStack
# (Pro: the stack uses ECS, ElastiCache, ELBv2 and API Gateway v2).
#
# usage:
#   infra/deploy.sh PARAMS.json [STACK_NAME]    deploy or update (STACK_NAME default: sushi)
#   infra/deploy.sh --delete [STACK_NAME]       delete the stack (retained resources stay)
#
# Order, so that a mistake costs nothing: parameters are validated against the template first
# (infra/validate_params.py), then the Lambda zip and the tools are checked, and only then is
# anything uploaded. If the first creation of a stack fails, CloudFormation rolls it back and
# this script deletes the empty ROLLBACK_COMPLETE stack, so nothing half-created is left behind
# (an update that fails is rolled back to the previous version by CloudFormation itself).
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
template=$repo/infra/template.yaml
zip=$repo/target/lambda/api-fn/bootstrap.zip
venv=${SUSHI_STATE_DIR:-$repo/.local}/venv-infra

log() { echo "[infra-deploy] $*" >&2; }
die() { echo "[infra-deploy] error: $*" >&2; exit 1; }

python=$venv/bin/python
[ -x "$python" ] || python=python3
"$python" -c 'import cfnlint' 2>/dev/null \
  || die "cfn-lint is needed to validate parameters: pip install -r infra/requirements.txt"

if [ "${1:-}" = "--delete" ]; then
  stack=${2:-sushi}
  command -v aws >/dev/null || die "the AWS CLI is missing"
  log "deleting stack $stack (the table and both KMS keys are retained; see infra/README.md)"
  aws cloudformation delete-stack --stack-name "$stack"
  aws cloudformation wait stack-delete-complete --stack-name "$stack"
  log "deleted $stack"
  exit 0
fi

params=${1:-}
stack=${2:-sushi}
[ -n "$params" ] || { sed -n '2,12p' "$0" >&2; exit 2; }
[ -f "$params" ] || die "parameter file $params not found (start from infra/params.example.json)"

log "validating $params against the template"
"$python" "$repo/infra/validate_params.py" --template "$template" "$params" \
  || die "invalid parameters (listed above); nothing was deployed"

[ -f "$zip" ] || die "$zip is missing; build it: cargo lambda build --profile lambda --arm64 --output-format zip -p api-fn --no-default-features --features aws --lambda-dir target/lambda"
command -v sam >/dev/null || die "the SAM CLI is missing: pip install aws-sam-cli (into its own virtualenv)"
command -v aws >/dev/null || die "the AWS CLI is missing: pip install -r localstack/requirements-deploy.txt"

mapfile -t overrides < <("$python" - "$params" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
if isinstance(data, list):
    data = {p["ParameterKey"]: p["ParameterValue"] for p in data}
for key, value in data.items():
    print(f"{key}={value}")
PY
)

existed=1
aws cloudformation describe-stacks --stack-name "$stack" >/dev/null 2>&1 || existed=0

on_error() {
  local code=$?
  trap - ERR
  echo "[infra-deploy] error: deploying $stack failed (exit $code)" >&2
  if [ "$existed" = 0 ]; then
    local status
    status=$(aws cloudformation describe-stacks --stack-name "$stack" \
      --query 'Stacks[0].StackStatus' --output text 2>/dev/null || echo ABSENT)
    if [ "$status" != ABSENT ]; then
      log "first creation failed ($status): deleting the stack so nothing half-created remains"
      aws cloudformation delete-stack --stack-name "$stack" || true
      aws cloudformation wait stack-delete-complete --stack-name "$stack" || true
    fi
  fi
  log "events: aws cloudformation describe-stack-events --stack-name $stack"
  exit "$code"
}
trap on_error ERR

log "deploying stack $stack"
sam deploy \
  --template-file "$template" \
  --stack-name "$stack" \
  --resolve-s3 \
  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
  --no-confirm-changeset \
  --no-fail-on-empty-changeset \
  --parameter-overrides "${overrides[@]}"

trap - ERR
aws cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text
