#!/bin/bash
# Container health check of the relay image (Docker HEALTHCHECK and the ECS task definition):
# exit 0 only if GET $HEALTHCHECK_PATH on 127.0.0.1:$PORT answers HTTP 200 within 4 seconds.
# Plain bash (/dev/tcp), so the runtime image needs no curl.
set -u

port=${PORT:-8080}
path=${HEALTHCHECK_PATH:-/health}

{ exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || exit 1
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 4 status <&3 || exit 1
case "$status" in
    "HTTP/1."?" 200 "*) exit 0 ;;
    *) exit 1 ;;
esac
