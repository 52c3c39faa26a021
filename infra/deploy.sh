#!/usr/bin/env bash
# Deploy (or update) the sushi stack from infra/template.yaml with the SAM CLI: the one deploy
# command of infra/README.md. With AWS_ENDPOINT_URL set, the same command targets LocalStack
# (Pro: the stack uses ECS, ElastiCache, ELBv2, API Gateway v2 and CloudFront).
#
# usage:
#   infra/deploy.sh PARAMS.json [STACK_NAME]    deploy or update (STACK_NAME default: sushi)
#   infra/deploy.sh --upload-web BUCKET [DISTRIBUTION_ID]
#                                               build the web app and upload it (the last step
#                                               of a deploy, alone; infra/test_web_upload.py)
#   infra/deploy.sh --delete [STACK_NAME]       empty the web bucket and delete the stack
#                                               (retained resources stay)
#
# Order, so that a mistake costs nothing: parameters are validated against the template first
# (infra/validate_params.py; a missing CloudFrontPrefixListId is looked up first, read-only),
# then the Lambda zip and the tools are checked and the web app is built, and only then is
# anything uploaded. After the stack, the web app's build output goes to the stack's bucket
# (content-hashed assets with a one-year Cache-Control, index.html no-cache, then an
# invalidation of index.html; infra/web_upload.py), and the one URL users open is printed. If the first creation of a stack fails, CloudFormation rolls it back and
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

# The web app exactly as relay/build.rs builds it for the binaries (relay/web/build.mjs), into
# a fresh directory: prints the directory.
build_web() {
  local out
  out=$(mktemp -d "${TMPDIR:-/tmp}/sushi-web.XXXXXX")
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    die "node and npm are needed to build the web app (relay/web)"
  fi
  if [ ! -d "$repo/relay/web/node_modules" ]; then
    (cd "$repo/relay/web" && npm ci --no-audit --no-fund --loglevel=error) >&2 \
      || die "npm ci failed in relay/web"
  fi
  (cd "$repo/relay/web" && SUSHI_WEB_OUT=$out node build.mjs) >&2 || die "the web build failed"
  echo "$out"
}

# Upload a built web app (and invalidate index.html when a distribution is given).
upload_web() { # dir bucket [distribution id]
  local args=(--dir "$1" --bucket "$2")
  [ -z "${3:-}" ] || args+=(--distribution-id "$3")
  "$python" "$repo/infra/web_upload.py" "${args[@]}"
}

stack_output() { # stack key
  aws cloudformation describe-stacks --stack-name "$1" \
    --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text
}

if [ "${1:-}" = "--upload-web" ]; then
  [ -n "${2:-}" ] || die "usage: $0 --upload-web BUCKET [DISTRIBUTION_ID]"
  web_dir=$(build_web)
  upload_web "$web_dir" "$2" "${3:-}"
  rm -rf "$web_dir"
  exit 0
fi

if [ "${1:-}" = "--delete" ]; then
  stack=${2:-sushi}
  command -v aws >/dev/null || die "the AWS CLI is missing"
  # CloudFormation deletes only an empty bucket; the web app is rebuilt by every deploy.
  bucket=$(stack_output "$stack" WebBucketName 2>/dev/null || true)
  if [ -n "$bucket" ] && [ "$bucket" != None ]; then
    log "emptying the web bucket $bucket"
    aws s3 rm "s3://$bucket" --recursive >/dev/null
  fi
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

mapfile -t overrides < <("$python" - "$params" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
if isinstance(data, list):
    data = {p["ParameterKey"]: p["ParameterValue"] for p in data}
for key, value in data.items():
    print(f"{key}={value}")
PY
)

# The relay's load balancer admits CloudFront's origin-facing addresses only; their managed
# prefix list has a different id in every region, so it is looked up unless given.
if ! printf '%s\n' "${overrides[@]}" | grep -q '^CloudFrontPrefixListId='; then
  command -v aws >/dev/null || die "the AWS CLI is missing: pip install -r localstack/requirements-deploy.txt"
  prefix_list=$(aws ec2 describe-managed-prefix-lists \
    --filters Name=prefix-list-name,Values=com.amazonaws.global.cloudfront.origin-facing \
    --query 'PrefixLists[0].PrefixListId' --output text) \
    || die "could not look up the CloudFront prefix list; set CloudFrontPrefixListId in $params"
  log "CloudFront origin-facing prefix list: $prefix_list"
  overrides+=("CloudFrontPrefixListId=$prefix_list")
fi

log "validating $params against the template"
"$python" "$repo/infra/validate_params.py" --template "$template" "${overrides[@]}" \
  || die "invalid parameters (listed above); nothing was deployed"

[ -f "$zip" ] || die "$zip is missing; build it: cargo lambda build --profile lambda --arm64 --output-format zip -p api-fn --no-default-features --features aws --lambda-dir target/lambda"
command -v sam >/dev/null || die "the SAM CLI is missing: pip install aws-sam-cli (into its own virtualenv)"
command -v aws >/dev/null || die "the AWS CLI is missing: pip install -r localstack/requirements-deploy.txt"
log "building the web app (relay/web)"
web_dir=$(build_web)

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

log "uploading the web app to the stack's bucket"
upload_web "$web_dir" "$(stack_output "$stack" WebBucketName)" "$(stack_output "$stack" DistributionId)" >&2
rm -rf "$web_dir"

trap - ERR
aws cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text
log "open $(stack_output "$stack" Url)"
