#!/bin/sh
# Container entrypoint of the relay image: derive RELAY_ADVERTISE_URL (how other relays reach
# this one) from the container's own address when the deployment did not set it, because in
# ECS/compose every replica has its own IP and a task definition cannot name it. Then exec the
# command so the relay is PID 1's direct child (ECS init) and receives SIGTERM itself.
set -eu

if [ -z "${RELAY_ADVERTISE_URL:-}" ]; then
    host=$(cat /proc/sys/kernel/hostname)
    addr=$(getent ahostsv4 "$host" 2>/dev/null | awk 'NR == 1 { print $1 }')
    if [ -n "$addr" ]; then
        RELAY_ADVERTISE_URL="http://$addr:${PORT:-8080}"
        export RELAY_ADVERTISE_URL
    else
        echo "relay-entrypoint: could not resolve $host; RELAY_ADVERTISE_URL left unset" >&2
    fi
fi

exec "$@"
