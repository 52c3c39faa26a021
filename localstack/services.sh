#!/usr/bin/env bash
# Installs (when missing) and starts, on loopback only, the real services the tests use:
#   moto's server (DynamoDB + KMS emulator, from PyPI, in a virtualenv)
#   redis-server and OpenSSH sshd (Debian packages), sshd with throwaway host keys and users.
# Everything lives under $SUSHI_STATE_DIR (default: <repo>/.local) so that `stop` ends exactly
# the processes this script started, by the pids it recorded.
#
# usage: localstack/services.sh start|stop|status|env
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${SUSHI_STATE_DIR:-$repo/.local}
venv=$state/venv
MOTO_PORT=${MOTO_PORT:-5055}
REDIS_PORT=${REDIS_PORT:-6390}
SSHD_PORT=${SSHD_PORT:-2222}
SSH_TEST_USER=${SSH_TEST_USER:-sushitest}
SSH_TEST_PASSWORD=${SSH_TEST_PASSWORD:-sushi-test-password}

log() { echo "[services] $*" >&2; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_all() {
  mkdir -p "$state"
  apt_install redis-server openssh-server openssh-client openssl
  if [ ! -x "$venv/bin/moto_server" ]; then
    log "creating virtualenv with moto[server] in $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$repo/localstack/requirements.txt"
  fi
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() { # port, name
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "$2 did not open 127.0.0.1:$1"; return 1
}

start_moto() {
  pid_alive "$state/moto.pid" && return 0
  log "starting moto server on 127.0.0.1:$MOTO_PORT"
  setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$state/moto.log" 2>&1 &
  echo $! >"$state/moto.pid"
  wait_port "$MOTO_PORT" moto
}

start_redis() {
  pid_alive "$state/redis.pid" && return 0
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$state" >"$state/redis.log" 2>&1 &
  echo $! >"$state/redis.pid"
  wait_port "$REDIS_PORT" redis
}

# A throwaway sshd: its own host keys, config and pid file under $state, one test user with a
# password (for password and keyboard-interactive logins) and an authorized_keys file that the
# relay tests fill with the public keys they generate.
setup_sshd() {
  local d=$state/sshd
  mkdir -p "$d"
  chmod 755 "$state" "$d"
  [ -f "$d/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$d/ssh_host_ed25519_key"
  if ! id "$SSH_TEST_USER" >/dev/null 2>&1; then
    useradd -m -s /bin/bash "$SSH_TEST_USER"
  fi
  echo "$SSH_TEST_USER:$SSH_TEST_PASSWORD" | chpasswd
  touch "$d/authorized_keys"; chmod 644 "$d/authorized_keys"
  mkdir -p /run/sshd
  cat >"$d/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $SSHD_PORT
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys .ssh/authorized_keys
StrictModes no
PasswordAuthentication yes
KbdInteractiveAuthentication yes
UsePAM yes
PermitRootLogin no
AllowUsers $SSH_TEST_USER
PrintMotd no
MaxStartups 200:30:400
MaxSessions 50
LogLevel ERROR
CONF
}

start_sshd() {
  pid_alive "$state/sshd.pid" && return 0
  setup_sshd
  log "starting sshd on 127.0.0.1:$SSHD_PORT (user $SSH_TEST_USER)"
  setsid /usr/sbin/sshd -D -e -f "$state/sshd/sshd_config" >"$state/sshd.log" 2>&1 &
  echo $! >"$state/sshd.pid"
  wait_port "$SSHD_PORT" sshd
}

stop_one() {
  local f=$state/$1.pid
  if pid_alive "$f"; then
    log "stopping $1 (pid $(cat "$f"))"
    kill "$(cat "$f")" 2>/dev/null || true
    for _ in $(seq 1 50); do pid_alive "$f" || break; sleep 0.1; done
  fi
  rm -f "$f"
}

print_env() {
  cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export SUSHI_TEST_MOTO_URL=http://127.0.0.1:$MOTO_PORT
export SUSHI_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export SUSHI_TEST_SSHD_ADDR=127.0.0.1:$SSHD_PORT
export SUSHI_TEST_SSH_USER=$SSH_TEST_USER
export SUSHI_TEST_SSH_PASSWORD=$SSH_TEST_PASSWORD
export SUSHI_TEST_SSH_AUTHORIZED_KEYS=$state/sshd/authorized_keys
export SUSHI_TEST_SSH_HOST_KEY=$state/sshd/ssh_host_ed25519_key
export SUSHI_TEST_PYTHON=$venv/bin/python
ENV
}

case "${1:-}" in
  start) install_all; start_moto; start_redis; start_sshd ;;
  stop) stop_one sshd; stop_one redis; stop_one moto ;;
  status) for s in moto redis sshd; do pid_alive "$state/$s.pid" && echo "$s up" || echo "$s down"; done ;;
  env) print_env ;;
  install) install_all ;;
  *) echo "usage: $0 start|stop|status|env|install" >&2; exit 2 ;;
esac
