#!/usr/bin/env bash
# Test of services.sh on a machine where other processes already hold ports (an sshd on 2222 is
# common, and other checkouts run their own test services): the script must never take a
# foreign listener for its own service.
#
#   1. An explicit port (SSHD_PORT) held by a foreign listener: `start` fails at once, naming
#      the port and its holder.
#   2. No ports given while the usual ports (5055, 6390, 2222) are all held, by this test's own
#      listeners or by whoever else holds them: every service comes up on another port, is the
#      process the script started, answers its own protocol, and `env` exports those ports.
#
# Loopback only, bounded in time; each case uses its own state dir and `stop` ends only the
# processes it started (by pid). The foreign listeners are checked to be alive afterwards.
#
# usage: localstack/services_test.sh   (reuses the virtualenv of $SUSHI_STATE_DIR or <repo>/.local)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
services=$repo/localstack/services.sh
parent_state=${SUSHI_STATE_DIR:-$repo/.local}
work=$(mktemp -d)
holders=()
unset MOTO_PORT REDIS_PORT SSHD_PORT

fail() { echo "services_test: FAIL: $*" >&2; exit 1; }
ok() { echo "services_test: ok: $*" >&2; }

cleanup() {
  for dir in "$work"/case*; do
    [ -d "$dir" ] && SUSHI_STATE_DIR=$dir "$services" stop >/dev/null 2>&1 || true
  done
  for pid in "${holders[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

state_dir() {
  mkdir -p "$work/$1"
  ln -s "$parent_state/venv" "$work/$1/venv"
  echo "$work/$1"
}

# A foreign listener on 127.0.0.1:$1 (0: any free port); sets HELD_PORT and HELD_PID.
hold() {
  local file=$work/held.$RANDOM
  python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
open(sys.argv[2], "w").write(str(s.getsockname()[1]))
time.sleep(600)' "$1" "$file" &
  HELD_PID=$!
  holders+=("$HELD_PID")
  for _ in $(seq 1 50); do [ -s "$file" ] && break; sleep 0.1; done
  [ -s "$file" ] || fail "could not hold port $1"
  HELD_PORT=$(cat "$file")
}

listener_pid() { ss -ltnpH "( sport = :$1 )" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Send $2 (printf %b) to 127.0.0.1:$1 and print the first $3 bytes of the answer (5 s at most).
probe() (
  exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  printf '%b' "$2" >&3
  IFS= read -r -t 5 -N "$3" reply <&3 || true
  printf '%s' "$reply"
)

case_explicit_port_held() {
  local dir out status=0
  dir=$(state_dir case1)
  hold 0
  out=$(SUSHI_STATE_DIR=$dir SSHD_PORT=$HELD_PORT timeout 90 "$services" start 2>&1) || status=$?
  [ "$status" -ne 0 ] || fail "start succeeded although SSHD_PORT=$HELD_PORT is held: $out"
  [ "$status" -ne 124 ] || fail "start did not fail at once: $out"
  grep -q "127.0.0.1:$HELD_PORT" <<<"$out" || fail "the error does not name the port: $out"
  grep -q "pid=$HELD_PID" <<<"$out" || fail "the error does not name the holder (pid $HELD_PID): $out"
  [ ! -f "$dir/sshd.pid" ] || fail "an sshd pid was recorded for a port it cannot own"
  kill -0 "$HELD_PID" || fail "the foreign listener was disturbed"
  SUSHI_STATE_DIR=$dir "$services" stop 2>/dev/null
  ok "an explicit port held by another process fails the start, naming port and holder"
}

case_usual_ports_held() {
  local dir name port pid
  declare -A usual=([moto]=5055 [redis]=6390 [sshd]=2222) holder_of=()
  for name in moto redis sshd; do
    if port_open "${usual[$name]}"; then
      holder_of[$name]=$(listener_pid "${usual[$name]}")
    else
      hold "${usual[$name]}"
      holder_of[$name]=$HELD_PID
    fi
  done
  dir=$(state_dir case2)
  SUSHI_STATE_DIR=$dir timeout 120 "$services" start 2>/dev/null || fail "start failed"
  eval "$(SUSHI_STATE_DIR=$dir "$services" env)"
  declare -A got=([moto]=$MOTO_PORT [redis]=$REDIS_PORT [sshd]=$SSHD_PORT)
  for name in moto redis sshd; do
    port=${got[$name]}
    [ "$port" != "${usual[$name]}" ] || fail "$name was given the held port $port"
    pid=$(cat "$dir/$name.pid")
    [ "$(listener_pid "$port")" = "$pid" ] || fail "$name's port $port is not held by its pid $pid"
  done
  [ "$(probe "$SSHD_PORT" "" 7)" = "SSH-2.0" ] \
    || fail "no SSH banner on $SSHD_PORT"
  [ "$(probe "$REDIS_PORT" 'PING\r\n' 5)" = "+PONG" ] \
    || fail "no redis PONG on $REDIS_PORT"
  [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MOTO_PORT/moto-api/data.json")" = 200 ] \
    || fail "moto does not answer on $MOTO_PORT"
  SUSHI_STATE_DIR=$dir "$services" stop 2>/dev/null
  for name in moto redis sshd; do
    ! port_open "${got[$name]}" || fail "$name still listens on ${got[$name]} after stop"
    kill -0 "${holder_of[$name]}" || fail "the holder of ${usual[$name]} was disturbed"
  done
  ok "with the usual ports held, each service runs on its own free port and env exports it"
}

case_explicit_port_held
case_usual_ports_held
echo "services_test: all passed" >&2
