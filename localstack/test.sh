#!/usr/bin/env bash
# The README's test command: installs and starts the real services the tests use (moto for
# DynamoDB + KMS, redis-server, OpenSSH sshd; see services.sh, which picks free ports when the
# usual ones are taken and exports the ones it chose), then runs the whole suite:
# formatting, clippy with warnings denied, every workspace test, the browser end-to-end test
# (relay/web/e2e/run.sh) and the deploy checks (infra/check.sh) when present. Services it
# started are stopped on exit, by pid.
#
# usage: localstack/test.sh            (from anywhere in the repository)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
services=$repo/localstack/services.sh

step() { printf '\n==> %s\n' "$*" >&2; }

step "starting test services (moto, redis-server, sshd)"
trap '"$services" stop' EXIT
"$services" start
eval "$("$services" env)"

step "test services never take a foreign listener for their own (localstack/services_test.sh)"
"$repo/localstack/services_test.sh"

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo clippy for the Lambda build's feature set (aws only)"
cargo clippy -p api-fn --no-default-features --features aws -- -D warnings

step "cargo test --workspace"
results=$(mktemp)
trap '"$services" stop; rm -f "$results"' EXIT
cargo test --workspace --no-fail-fast 2>&1 | tee "$results"
# One total for the whole suite (cargo prints one line per test binary, many of them 0 for
# binaries without unit tests); printed again as the very last line below.
summary=$(awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed", p, f }' "$results")

step "API fuzzing against the OpenAPI document (localstack/fuzz.sh: schemathesis on sushi and on api-fn with moto)"
"$repo/localstack/fuzz.sh"

step "browser end-to-end test (Chromium + Playwright)"
"$repo/relay/web/e2e/run.sh"

if [ -x "$repo/infra/check.sh" ]; then
  step "deploy checks (infra/check.sh)"
  "$repo/infra/check.sh"
fi

step "all checks passed"
trap - EXIT
"$services" stop
rm -f "$results"
echo "tests: $summary"
