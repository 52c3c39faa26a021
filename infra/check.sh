#!/usr/bin/env bash
# infra/check.sh: every deploy-side check that can run on this machine, in one entry point for
# the README's test command. It installs what it needs (Python tools into virtualenvs under
# .local/, the aarch64 Rust target), starts the loopback test services (localstack/services.sh)
# and exits non-zero at the first failing check, naming it.
#
#   template   cfn-lint and checkov pass on infra/template.yaml; out-of-range parameters fail;
#              infra/test_cloudfront.py: every path of infra/browser-paths.json is routed by the
#              CloudFront behaviours to the component that serves it
#   images     hadolint + checkov on the Dockerfiles, shellcheck on the scripts, the relay
#              image's health-check script against a live server
#   compose    `docker compose config` when a compose client exists, else the compose-spec
#              schema plus localstack/check_compose.py
#   provision  localstack/provision.py twice against moto (idempotent), the ready.d hook, destroy
#   zip        cargo lambda build --profile lambda --arm64 --output-format zip -p api-fn
#              --no-default-features --features aws (the Lambda's feature set: no rusqlite,
#              russh or redis in its dependency graph), size budget
#   deploy     localstack/deploy.sh up/down against moto with that zip, and a failing `up`
#              that must leave nothing behind
#   web        infra/test_web_upload.py: `infra/deploy.sh --upload-web` against moto's S3 and
#              CloudFront uploads exactly the web build, with the local binary's cache rules
#   e2e        infra/lambda_e2e.py: api-fn (features: aws only) under `cargo lambda watch`, seed
#              flow, cold start
#
# Figures (zip size, build time, cold start) are printed at the end and written to
# .local/logs/infra-figures.json.
#
# environment:
#   SUSHI_CHECK_ONLY="template compose"  run only these steps (default: all, in the order above)
#   SUSHI_LAMBDA_TARGET_DIR  CARGO_TARGET_DIR of the cross build (default
#                            ~/.cache/sushi/lambda-target, kept between runs: a cold build takes
#                            ~11 CPU-minutes on 2 cores, a warm one seconds)
#   SUSHI_ZIP_BUDGET_BYTES   size budget of bootstrap.zip (default 6 MB)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
state=${SUSHI_STATE_DIR:-$repo/.local}
logs=$state/logs
venv=$state/venv-infra
awscli_venv=$state/venv-awscli
zip_budget=${SUSHI_ZIP_BUDGET_BYTES:-6000000}
lambda_target=${SUSHI_LAMBDA_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sushi/lambda-target}
zip=$repo/target/lambda/api-fn/bootstrap.zip
only=${SUSHI_CHECK_ONLY:-template images compose provision zip deploy web e2e}
mkdir -p "$logs"

current=setup
started_all=$(date +%s)
declare -A figures=()

log() { echo "[infra-check] $*" >&2; }
fail() { echo "[infra-check] FAILED in '$current': $*" >&2; exit 1; }
on_exit() {
  local code=$?
  [ "$code" -eq 0 ] || echo "[infra-check] FAILED in step $current (exit $code)" >&2
}
trap on_exit EXIT

wants() { [[ " $only " == *" $1 "* ]]; }
begin() { current=$1; log "== $1: $2"; step_started=$(date +%s); }
done_step() { log "   $current ok ($(( $(date +%s) - step_started ))s)"; }

ensure_venv() { # dir, requirements file
  local dir=$1 req=$2 stamp=$1/.requirements.sha
  local want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing $(basename "$req") into $dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$req" >"$logs/pip-$(basename "$dir").log" 2>&1 \
      || fail "pip install -r $req failed (see $logs/pip-$(basename "$dir").log)"
    echo "$want" >"$stamp"
  fi
}

ensure_venv "$venv" infra/requirements.txt
export PATH=$venv/bin:$PATH

need_services() {
  if [ -z "${services_up:-}" ]; then
    localstack/services.sh start >"$logs/services.log" 2>&1 || fail "localstack/services.sh start (see $logs/services.log)"
    eval "$(localstack/services.sh env)"
    services_up=1
  fi
}

# ------------------------------------------------------------------ template
if wants template; then
  begin template "cfn-lint, checkov, parameter ranges"
  cfn-lint infra/template.yaml || fail "cfn-lint reported problems in infra/template.yaml"
  # --skip-download: no network for checkov's guideline lookups; rules are bundled.
  checkov -f infra/template.yaml --framework cloudformation --skip-download --compact --quiet \
    >"$logs/checkov-template.log" 2>&1 || { cat "$logs/checkov-template.log" >&2; fail "checkov failed on infra/template.yaml"; }
  grep -E "Passed checks" "$logs/checkov-template.log" >&2 || true
  # Every skipped rule carries a justification in the template metadata.
  while read -r id; do
    grep -qE "^    $id: .{20,}" infra/template.yaml || fail "checkov skip $id has no justification in Metadata.CheckovSkips"
  done < <(grep -oE 'checkov:skip=[A-Z0-9_]+' infra/template.yaml | cut -d= -f2 | sort -u)
  python infra/validate_params.py infra/params.example.json || fail "infra/params.example.json is rejected"
  bad=0
  for override in LambdaMemorySize=64 LambdaTimeout=30 LoadBalancerIdleTimeoutSeconds=60 \
      RelayKeepaliveSeconds=56 RelayCpu=300 RelayDesiredCount=0 RedisNodes=7 LogRetentionDays=2 \
      AppName=Bad_Name LambdaArchitecture=sparc JwksUrl=http://insecure.example.com \
      RelayImageUri=no-tag; do
    if python - "$override" <<'PY' 2>/dev/null
import json, subprocess, sys
key, value = sys.argv[1].split("=", 1)
params = json.load(open("infra/params.example.json"))
params[key] = value
out = subprocess.run([sys.executable, "infra/validate_params.py", *[f"{k}={v}" for k, v in params.items()]],
                     capture_output=True, text=True)
sys.exit(0 if out.returncode == 0 else 1)
PY
    then log "   out-of-range $override was accepted"; bad=1
    fi
  done
  [ $bad = 0 ] || fail "some out-of-range parameters passed validation"
  log "   12 out-of-range parameter values rejected"
  python infra/test_cloudfront.py >"$logs/test-cloudfront.log" 2>&1 \
    || { cat "$logs/test-cloudfront.log" >&2; fail "infra/test_cloudfront.py: the CloudFront routing disagrees with infra/browser-paths.json"; }
  log "   $(grep -c ' ok$' "$logs/test-cloudfront.log") CloudFront routing checks passed"
  done_step
fi

# ------------------------------------------------------------------ images
if wants images; then
  begin images "hadolint, checkov, shellcheck, relay health check"
  hadolint infra/image/Dockerfile localstack/sshd/Dockerfile || fail "hadolint"
  checkov -f infra/image/Dockerfile -f localstack/sshd/Dockerfile --framework dockerfile --skip-download \
    --compact --quiet >"$logs/checkov-docker.log" 2>&1 || { cat "$logs/checkov-docker.log" >&2; fail "checkov failed on a Dockerfile"; }
  shellcheck infra/*.sh localstack/*.sh localstack/ready.d/*.sh infra/image/*.sh || fail "shellcheck"
  # The image's health check against a live HTTP server: 200 -> healthy; 404 / closed -> not.
  port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  python -m http.server "$port" --bind 127.0.0.1 --directory "$repo/infra/image" >/dev/null 2>&1 &
  http_pid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  hc_ok=0
  PORT=$port HEALTHCHECK_PATH=/healthcheck.sh infra/image/healthcheck.sh && hc_ok=1
  PORT=$port HEALTHCHECK_PATH=/missing infra/image/healthcheck.sh && hc_ok=0
  kill "$http_pid" 2>/dev/null || true
  wait "$http_pid" 2>/dev/null || true
  PORT=$port infra/image/healthcheck.sh && hc_ok=0
  [ $hc_ok = 1 ] || fail "infra/image/healthcheck.sh misjudged health"
  done_step
fi

# ------------------------------------------------------------------ compose
if wants compose; then
  begin compose "localstack/docker-compose.yml"
  if docker compose version >/dev/null 2>&1; then
    JWT_SECRET=check docker compose -f localstack/docker-compose.yml config -q || fail "docker compose config"
    log "   validated with docker compose config"
  else
    log "   no docker compose client: compose-spec schema + semantic checks"
  fi
  check-jsonschema --builtin-schema vendor.compose-spec localstack/docker-compose.yml || fail "compose-spec schema"
  python localstack/check_compose.py || fail "localstack/check_compose.py"
  done_step
fi

# ------------------------------------------------------------------ provision
if wants provision; then
  begin provision "provision.py and the ready.d hook against moto"
  need_services
  py=$SUSHI_TEST_PYTHON
  suffix=$(date +%s)-$$
  t=sushi-check-$suffix a=alias/sushi-check-$suffix
  out1=$("$py" localstack/provision.py --table "$t" --alias "$a") || fail "provision.py (first run)"
  out2=$("$py" localstack/provision.py --table "$t" --alias "$a") || fail "provision.py (second run)"
  [ "$out1" = "$out2" ] || fail "provision.py is not idempotent: '$out1' vs '$out2'"
  grep -qx "DYNAMODB_TABLE=$t" <<<"$out1" || fail "no DYNAMODB_TABLE line: $out1"
  grep -qx "AUDIT_TABLE=$t-audit" <<<"$out1" || fail "no AUDIT_TABLE line: $out1"
  grep -qE '^KMS_KEY_ID=[0-9a-f-]{36}$' <<<"$out1" || fail "no KMS_KEY_ID line: $out1"
  [ "$(wc -l <<<"$out1")" = 3 ] || fail "stdout must be exactly three lines: $out1"
  hook=$(SUSHI_ENDPOINT=$AWS_ENDPOINT_URL SUSHI_PROVISION_SCRIPT=localstack/provision.py SUSHI_PYTHON=$py \
    DYNAMODB_TABLE=$t KMS_KEY_ALIAS=$a localstack/ready.d/10-provision.sh) || fail "ready.d hook"
  [ "$hook" = "$out1" ] || fail "ready.d hook disagrees with provision.py: $hook"
  "$py" localstack/provision.py --table "$t" --alias "$a" --destroy || fail "provision.py --destroy"
  if "$py" localstack/provision.py --endpoint-url http://127.0.0.1:9 --table "$t" >/dev/null 2>&1; then
    fail "provision.py succeeded against a closed port"
  fi
  done_step
fi

# ------------------------------------------------------------------ zip
if wants zip; then
  begin zip "cargo lambda build --profile lambda --arm64 --features aws (size budget $zip_budget bytes)"
  arch=--arm64
  if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu >"$logs/rustup.log" 2>&1 || {
      log "   could not install the aarch64 target (see $logs/rustup.log); building x86_64 instead"
      arch=--x86-64
    }
  fi
  # Only the `aws` feature: the Lambda binary links DynamoDB + KMS, no SQLite/SSH/Redis. Checked
  # on the dependency graph first (no build needed), so a stray dependency fails in seconds.
  triple=aarch64-unknown-linux-gnu
  [ "$arch" = --arm64 ] || triple=x86_64-unknown-linux-gnu
  cargo tree -p api-fn --no-default-features --features aws -e normal --target "$triple" \
    --prefix none --format '{p}' >"$logs/lambda-deps.txt" 2>&1 \
    || { tail -20 "$logs/lambda-deps.txt" >&2; fail "cargo tree (see $logs/lambda-deps.txt)"; }
  stray=$(awk '{print $1}' "$logs/lambda-deps.txt" | grep -xE 'rusqlite|libsqlite3-sys|russh|redis' | sort -u | tr '\n' ' ' || true)
  [ -z "$stray" ] || fail "the aws-only Lambda build still links: $stray(see: cargo tree -p api-fn --no-default-features --features aws -e normal -i <crate>)"
  build_started=$(date +%s)
  CARGO_TARGET_DIR=$lambda_target cargo lambda build --profile lambda "$arch" --output-format zip \
    -p api-fn --no-default-features --features aws --lambda-dir target/lambda >"$logs/lambda-build.log" 2>&1 \
    || { tail -30 "$logs/lambda-build.log" >&2; fail "cargo lambda build (see $logs/lambda-build.log)"; }
  figures[zip_build_seconds]=$(( $(date +%s) - build_started ))
  [ -f "$zip" ] || fail "$zip was not produced"
  size=$(stat -c %s "$zip")
  figures[zip_bytes]=$size
  figures[zip_arch]=${arch#--}
  python -m zipfile -l "$zip" | grep -qE '^bootstrap +' || fail "$zip has no bootstrap"
  [ "$size" -le "$zip_budget" ] || fail "$zip is $size bytes, over the $zip_budget budget"
  log "   bootstrap.zip: $size bytes (${arch#--}), built in ${figures[zip_build_seconds]}s"
  done_step
fi

# ------------------------------------------------------------------ deploy
if wants deploy; then
  begin deploy "localstack/deploy.sh against moto (up, down, failing up)"
  need_services
  ensure_venv "$awscli_venv" localstack/requirements-deploy.txt
  deploy_zip=$zip
  if [ ! -f "$deploy_zip" ]; then # the deploy step alone (SUSHI_CHECK_ONLY=deploy): any zip will do
    deploy_zip=$logs/placeholder.zip
    (cd "$logs" && printf '#!/bin/sh\n' >bootstrap && python -m zipfile -c placeholder.zip bootstrap)
  fi
  name=sushi-check-$$
  aws=$awscli_venv/bin/aws
  export JWT_SECRET=check-deploy-secret-of-at-least-32-bytes LAMBDA_ZIP=$deploy_zip SMOKE_TEST=0 AWS_CLI=$aws
  NAME=$name localstack/deploy.sh up >"$logs/deploy-up.out" || fail "deploy.sh up"
  grep -q "^FUNCTION_NAME=$name-api-fn$" "$logs/deploy-up.out" || fail "deploy.sh printed no FUNCTION_NAME"
  "$aws" lambda get-function --function-name "$name-api-fn" >/dev/null || fail "function missing after up"
  NAME=$name localstack/deploy.sh down || fail "deploy.sh down"
  "$aws" lambda get-function --function-name "$name-api-fn" >/dev/null 2>&1 && fail "function left after down"
  if NAME=$name-f DEPLOY_FAIL_AFTER=url localstack/deploy.sh up >/dev/null 2>"$logs/deploy-fail.err"; then
    fail "deploy.sh up with DEPLOY_FAIL_AFTER=url succeeded"
  fi
  grep -q "step 'create function URL' failed" "$logs/deploy-fail.err" || fail "no clear failure message: $(cat "$logs/deploy-fail.err")"
  "$aws" lambda get-function --function-name "$name-f-api-fn" >/dev/null 2>&1 && fail "failed up left the function"
  "$aws" iam get-role --role-name "$name-f-api-fn" >/dev/null 2>&1 && fail "failed up left the role"
  "$aws" dynamodb describe-table --table-name "$name-f" >/dev/null 2>&1 && fail "failed up left the table"
  "$aws" kms describe-key --key-id "alias/$name-f" >/dev/null 2>&1 && fail "failed up left the key alias"
  unset JWT_SECRET LAMBDA_ZIP SMOKE_TEST AWS_CLI
  done_step
fi

# ------------------------------------------------------------------ web
if wants web; then
  begin web "the deploy's web upload against moto (S3, CloudFront)"
  need_services
  python infra/test_web_upload.py >"$logs/test-web-upload.log" 2>&1 \
    || { cat "$logs/test-web-upload.log" >&2; fail "infra/test_web_upload.py"; }
  done_step
fi

# ------------------------------------------------------------------ e2e
if wants e2e; then
  begin e2e "api-fn under cargo lambda watch against moto"
  need_services
  python infra/lambda_e2e.py --python "$SUSHI_TEST_PYTHON" >"$logs/lambda-e2e.out" 2>"$logs/lambda-e2e.err" \
    || { cat "$logs/lambda-e2e.err" >&2; fail "infra/lambda_e2e.py"; }
  result=$(sed -n 's/^E2E_RESULT //p' "$logs/lambda-e2e.out")
  figures[e2e]=$result
  log "   $result"
  done_step
fi

figures[total_seconds]=$(( $(date +%s) - started_all ))
{
  printf '{'
  sep=""
  for key in "${!figures[@]}"; do
    value=${figures[$key]}
    [[ $value =~ ^[0-9]+$ || $value == \{* ]] || value="\"$value\""
    printf '%s"%s": %s' "$sep" "$key" "$value"
    sep=", "
  done
  printf '}\n'
} >"$logs/infra-figures.json"
log "figures: $(cat "$logs/infra-figures.json")"
echo "infra/check.sh: all checks passed ($only)"
