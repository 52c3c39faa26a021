#!/usr/bin/env bash
# Browser end-to-end test: Debian's chromium (installed with apt-get when missing) driven by
# playwright-core (from npm) against the real `sushi` binary and the test sshd.
#
# Installs what it needs (chromium, npm packages), builds `sushi`, makes sure the test services
# are up (starting them with localstack/services.sh only if they are not, and stopping then
# only what it started), and runs `node --test` on relay/web/e2e. The test itself starts sushi
# and a fake OIDC provider and stops them by handle. Exits non-zero on any failure.
# Screenshots land in $SUSHI_E2E_ARTIFACTS (default relay/web/test-results/).
#
# usage: relay/web/e2e/run.sh
set -euo pipefail

web=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
repo=$(cd "$web/../.." && pwd)
services=$repo/localstack/services.sh
log() { printf '[e2e] %s\n' "$*" >&2; }

if [ ! -x /usr/bin/chromium ]; then
  log "installing Debian chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

cd "$web"
log "npm ci"
npm ci --no-audit --no-fund --loglevel=error

log "cargo build --bin sushi"
(cd "$repo" && cargo build --bin sushi)
target=${CARGO_TARGET_DIR:-$repo/target}
case "$target" in /*) ;; *) target=$repo/$target ;; esac
export SUSHI_BIN=$target/debug/sushi

started_services=0
cleanup() {
  if [ "$started_services" = 1 ]; then "$services" stop || true; fi
}
trap cleanup EXIT
if [ -z "${SUSHI_TEST_SSHD_ADDR:-}" ]; then
  if ! "$services" status | grep -q '^sshd up'; then
    log "starting the test services"
    "$services" start
    started_services=1
  fi
  eval "$("$services" env)"
fi

export SUSHI_E2E_ARTIFACTS=${SUSHI_E2E_ARTIFACTS:-$web/test-results}
log "type check (tsc)"
npm run --silent check
log "unit tests of the pure modules (node --test)"
npm run --silent test
log "node --test e2e/browser.test.mjs e2e/terminal.test.mjs (artifacts in $SUSHI_E2E_ARTIFACTS)"
node --test --test-concurrency=1 e2e/browser.test.mjs e2e/terminal.test.mjs
log "browser tests passed"
