#!/usr/bin/env bash
# Installs (when missing) and starts, on loopback only, the real services the tests use:
#   moto's server (DynamoDB + KMS emulator, from PyPI, in a virtualenv)
#   redis-server and OpenSSH sshd (Debian packages), sshd with throwaway host keys and users;
#   tmux (Debian package) for the persistent-shell tests, which run it through that sshd.
# Everything lives under $SUSHI_STATE_DIR (default: <repo>/.local) so that `stop` ends exactly
# the processes this script started, by the pids it recorded.
#
# Ports: MOTO_PORT, REDIS_PORT, SSHD_PORT when given are used as they are, and a port already
# held by another process fails the start at once, naming the port and its holder. Otherwise
# each service takes its usual port (5055, 6390, 2222) when free, else a free one; the chosen
# ports are recorded in the state dir and `env` exports them. A service counts as started only
# once the process this script started is the one listening on its port, so a foreign sshd on
# 2222 (common) is never taken for ours.
#
# usage: localstack/services.sh start|stop|status|env
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${SUSHI_STATE_DIR:-$repo/.local}
venv=$state/venv
declare -A DEFAULT_PORT=([moto]=5055 [redis]=6390 [sshd]=2222)
declare -A EXPLICIT_PORT=([moto]=${MOTO_PORT:-} [redis]=${REDIS_PORT:-} [sshd]=${SSHD_PORT:-})
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
  apt_install redis-server openssh-server openssh-client openssl tmux
  if [ ! -x "$venv/bin/moto_server" ]; then
    log "creating virtualenv with moto[server] in $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$repo/localstack/requirements.txt"
  fi
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Who listens on a port, as ss reports it (process name and pid), for error messages.
holder() {
  local line
  line=$(ss -ltnpH "( sport = :$1 )" 2>/dev/null | head -n 1)
  if [ -z "$line" ]; then echo "an unknown process"; return; fi
  grep -o 'users:(.*)' <<<"$line" || echo "a process this user cannot see"
}

# Whether pid $1 is the process listening on port $2.
owns_port() { ss -ltnpH "( sport = :$2 )" 2>/dev/null | grep -q "pid=$1,"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The port a service is to start on (see the header), or failure naming the holder.
choose_port() {
  local name=$1 explicit=${EXPLICIT_PORT[$1]} default=${DEFAULT_PORT[$1]}
  if [ -n "$explicit" ]; then
    if port_open "$explicit"; then
      log "127.0.0.1:$explicit (${name^^}_PORT) is already held by $(holder "$explicit"); not starting $name"
      return 1
    fi
    echo "$explicit"
  elif port_open "$default"; then
    local port; port=$(free_port)
    log "127.0.0.1:$default is held by $(holder "$default"); $name takes free port $port"
    echo "$port"
  else
    echo "$default"
  fi
}

# The port a service was started on (recorded), else the one it would be given.
port_of() {
  if [ -n "${EXPLICIT_PORT[$1]}" ]; then echo "${EXPLICIT_PORT[$1]}"
  elif [ -f "$state/$1.port" ]; then cat "$state/$1.port"
  else echo "${DEFAULT_PORT[$1]}"; fi
}

# Wait until the process we started (pid file) is the one listening on the port; fail at once
# if it exits (the port was taken meanwhile), naming whoever holds the port.
wait_own_port() { # name port
  local pid; pid=$(cat "$state/$1.pid")
  for _ in $(seq 1 150); do
    owns_port "$pid" "$2" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$1 exited before listening on 127.0.0.1:$2 (held by $(holder "$2")); see $state/$1.log"
      rm -f "$state/$1.pid" "$state/$1.port"; return 1
    fi
    sleep 0.1
  done
  log "$1 (pid $pid) is not listening on 127.0.0.1:$2 after 15 s; the port is held by $(holder "$2")"
  return 1
}

# Start one service: $1 its name, then its command line, in which the word PORT stands for the
# chosen port.
launch() {
  local name=$1 port; shift
  pid_alive "$state/$name.pid" && return 0
  port=$(choose_port "$name") || return 1
  log "starting $name on 127.0.0.1:$port"
  setsid "${@/#PORT/$port}" >"$state/$name.log" 2>&1 &
  echo $! >"$state/$name.pid"
  echo "$port" >"$state/$name.port"
  wait_own_port "$name" "$port"
}

# moto's server with DynamoDB requests made atomic against each other, as the real service's
# are (see moto_server.py).
start_moto() { launch moto "$venv/bin/python" "$repo/localstack/moto_server.py" -H 127.0.0.1 -p PORT; }

start_redis() {
  launch redis redis-server --bind 127.0.0.1 --port PORT --save '' --appendonly no --dir "$state"
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
Port $1
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
Subsystem sftp internal-sftp
LogLevel ERROR
CONF
}

start_sshd() {
  pid_alive "$state/sshd.pid" && return 0
  local port; port=$(choose_port sshd) || return 1
  setup_sshd "$port"
  log "starting sshd on 127.0.0.1:$port (user $SSH_TEST_USER)"
  setsid /usr/sbin/sshd -D -e -f "$state/sshd/sshd_config" >"$state/sshd.log" 2>&1 &
  echo $! >"$state/sshd.pid"
  echo "$port" >"$state/sshd.port"
  wait_own_port sshd "$port"
}

stop_one() {
  local f=$state/$1.pid
  if pid_alive "$f"; then
    log "stopping $1 (pid $(cat "$f"))"
    kill "$(cat "$f")" 2>/dev/null || true
    for _ in $(seq 1 50); do pid_alive "$f" || break; sleep 0.1; done
  fi
  rm -f "$f" "$state/$1.port"
}

print_env() {
  local MOTO_PORT REDIS_PORT SSHD_PORT
  MOTO_PORT=$(port_of moto) REDIS_PORT=$(port_of redis) SSHD_PORT=$(port_of sshd)
  cat <<ENV
export MOTO_PORT=$MOTO_PORT
export REDIS_PORT=$REDIS_PORT
export SSHD_PORT=$SSHD_PORT
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
  status) for s in moto redis sshd; do pid_alive "$state/$s.pid" && echo "$s up on 127.0.0.1:$(port_of "$s")" || echo "$s down"; done ;;
  env) print_env ;;
  install) install_all ;;
  *) echo "usage: $0 start|stop|status|env|install" >&2; exit 2 ;;
esac
