#!/usr/bin/env python3
"""End-to-end test of the Lambda path: the real api-fn binary under `cargo lambda watch` (the
Lambda runtime emulator), backed by DynamoDB and KMS on the moto server, driven over HTTP. The
binary is built with the Lambda zip's feature set (`--no-default-features --features aws`), so
the test exercises what is deployed.

What it proves, in order:
  1. missing configuration stops the binary at start with one line naming the variable;
  2. `api-fn token --email ...` mints a token with JWT_SECRET (the README's first-user step);
  3. the seed flow through the emulator's function-URL endpoint: set master password, create,
     list, get, delete, then 404 for the deleted machine and 401 without a token;
  4. cold start: a request is queued at the emulator, then the binary is started the way
     Lambda starts it (AWS_LAMBDA_RUNTIME_API pointing at the emulator); the time from exec to
     that request's answer is the cold start (process start + runtime init + one request).

The table and key are created with localstack/provision.py (unique names) and destroyed at the
end; the emulator runs in its own process group and is stopped by its pid, whatever happens.
Prints one `E2E_RESULT {...}` JSON line for infra/check.sh to record.

Needs: cargo-lambda on PATH, moto on $AWS_ENDPOINT_URL (localstack/services.sh start), boto3.
usage: lambda_e2e.py [--release | --profile dev|release|lambda] [--python PY]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FUNCTION = "api-fn"
# The Lambda build's features (infra/check.sh's zip step, infra/README.md): DynamoDB + KMS only.
LAMBDA_FEATURES = ["--no-default-features", "--features", "aws"]
JWT_SECRET = "lambda-e2e-secret-" + uuid.uuid4().hex
MASTER = "correct horse battery staple"
SECRET_VALUE = "e2e-ssh-password-never-returned"


def log(msg: str) -> None:
    sys.stderr.write(f"[lambda-e2e] {msg}\n")
    sys.stderr.flush()


class Failure(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Failure(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def provision(python: str, table: str, alias: str, destroy: bool = False) -> dict[str, str]:
    cmd = [python, str(REPO / "localstack/provision.py"), "--table", table, "--alias", alias]
    if destroy:
        cmd.append("--destroy")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise Failure(f"provision.py failed: {out.stderr.strip()}")
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def request(base: str, method: str, path: str, token: str | None = None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        # The browser's way: the jwt cookie (the Bearer header is covered by the Rust tests).
        req.add_header("cookie", f"theme=dark; jwt={token}")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, raw, headers = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        status, raw, headers = err.code, err.read(), err.headers
    elapsed = time.perf_counter() - started
    ctype = headers.get("content-type", "")
    expect(ctype.startswith("application/json"), f"{method} {path}: content-type {ctype!r}")
    text = raw.decode()
    expect(SECRET_VALUE not in text, f"{method} {path}: a secret came back")
    envelope = json.loads(text)
    # Errors carry the machine-readable `code` beside the seed's three fields.
    fields = {"status", "message", "data"} | ({"code"} if status >= 400 else set())
    expect(set(envelope) == fields, f"{method} {path}: envelope {envelope}")
    return status, envelope, elapsed


def wait_port(port: int, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"cargo lambda watch exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise Failure(f"cargo lambda watch did not listen on 127.0.0.1:{port} within {seconds:.0f}s")


def binary_path(profile: str) -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / ("debug" if profile == "dev" else profile) / FUNCTION


def check_missing_config(binary: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KMS_KEY_ID", "DYNAMODB_TABLE")}
    env["DYNAMODB_TABLE"] = "some-table"
    out = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=30)
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    expect(out.returncode != 0, "api-fn started without KMS_KEY_ID")
    expect(
        len(lines) == 1 and "KMS_KEY_ID" in lines[0],
        f"expected one stderr line naming KMS_KEY_ID, got {out.stderr!r}",
    )
    log(f"missing configuration: exit {out.returncode}, {lines[0]!r}")


def mint_token(binary: Path, email: str) -> str:
    env = dict(os.environ, JWT_SECRET=JWT_SECRET)
    env.pop("DYNAMODB_TABLE", None)
    env.pop("KMS_KEY_ID", None)
    out = subprocess.run(
        [str(binary), "token", "--email", email], env=env, capture_output=True, text=True, timeout=30
    )
    expect(out.returncode == 0, f"api-fn token failed: {out.stderr.strip()}")
    token = out.stdout.strip()
    expect(token.count(".") == 2, f"api-fn token printed {token!r}")
    return token


def seed_flow(base: str, token: str, timings: list[float]) -> list[float]:
    status, env, took = request(base, "PUT", "/api/v1/master-password", token, {"password": MASTER})
    timings.append(took)
    expect(status == 200, f"master password: {status} {env}")
    machine = {
        "name": "e2e", "hostname": "10.1.2.3", "port": "22", "username": "ubuntu",
        "password": SECRET_VALUE,
    }
    status, env, _ = request(base, "POST", "/api/v1/machine", token, machine)
    expect(status == 200 and env["status"] == "OK" and env["message"] == "Machine created successfully", f"create: {status} {env}")
    machine_id = env["data"]["id"]
    status, env, _ = request(base, "GET", "/api/v1/machines", token)
    expect(status == 200 and env["message"] == "Machines fetched successfully", f"list: {status} {env}")
    expect([m["id"] for m in env["data"]] == [machine_id], f"list: {env['data']}")
    warm = []
    for _ in range(10):
        status, env, took = request(base, "GET", f"/api/v1/machine/{machine_id}", token)
        expect(status == 200 and env["data"]["name"] == "e2e", f"get: {status} {env}")
        for secret in ("password", "private_key", "passphrase"):
            expect(secret not in env["data"], f"get returned {secret}")
        warm.append(took)
    status, env, _ = request(base, "DELETE", f"/api/v1/machine/{machine_id}", token)
    expect(status == 200 and env["message"] == "Machine deleted successfully", f"delete: {status} {env}")
    status, env, _ = request(base, "GET", f"/api/v1/machine/{machine_id}", token)
    expect(status == 404 and env["status"] == "Not Found", f"get after delete: {status} {env}")
    status, env, _ = request(base, "GET", "/api/v1/machines")
    expect(status == 401 and env["message"] == "Invalid or missing JWT token", f"no token: {status} {env}")
    return warm


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--release", action="store_true", help="build and run the release profile")
    p.add_argument("--profile", default=None,
                   help="cargo profile to build and run (dev, release, lambda); overrides --release")
    p.add_argument("--python", default=sys.executable, help="Python with boto3 for provision.py")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    args = p.parse_args(argv)
    if not os.environ.get("AWS_ENDPOINT_URL"):
        log("AWS_ENDPOINT_URL is not set: start moto with localstack/services.sh start and "
            'eval "$(localstack/services.sh env)"')
        return 1

    suffix = uuid.uuid4().hex[:12]
    table, alias = f"sushi-e2e-{suffix}", f"alias/sushi-e2e-{suffix}"
    proc = None
    function = None
    provisioned = False
    workdir = tempfile.mkdtemp(prefix="sushi-lambda-e2e-")
    watch_log = Path(workdir) / "watch.log"
    function_log = Path(workdir) / "function.log"
    try:
        profile = args.profile or ("release" if args.release else "dev")
        log(f"building api-fn (profile {profile}, {' '.join(LAMBDA_FEATURES)})")
        started = time.perf_counter()
        subprocess.run(["cargo", "build", "-q", "-p", FUNCTION, *LAMBDA_FEATURES,
                        "--profile", profile], cwd=REPO, check=True)
        log(f"built in {time.perf_counter() - started:.1f}s")
        binary = binary_path(profile)
        check_missing_config(binary)
        token = mint_token(binary, "e2e@example.com")

        ids = provision(args.python, table, alias)
        provisioned = True
        port = free_port()
        # The emulator serves the Lambda Runtime API and the function-URL front end; we start
        # the real binary ourselves (as Lambda does) so that its start-up is timed from the
        # exec, not from `cargo run` checking the build.
        cmd = [
            "cargo", "lambda", "watch", "--only-lambda-apis",
            "-A", "127.0.0.1", "-P", str(port),
        ]
        log(f"starting: {' '.join(cmd)} (log: {watch_log})")
        with open(watch_log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        wait_port(port, proc, args.startup_timeout)
        # With --only-lambda-apis the emulator hosts one function, named "_", at /.rt.
        base = f"http://127.0.0.1:{port}/lambda-url/_"
        function_env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_LAMBDA_", "DYNAMODB_", "KMS_", "JWT"))
        }
        function_env.update(
            AWS_LAMBDA_FUNCTION_NAME=FUNCTION,
            AWS_LAMBDA_FUNCTION_VERSION="1",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
            AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{port}/.rt",
            DYNAMODB_TABLE=ids["DYNAMODB_TABLE"],
            # By alias, as the compose stack does: prove the key provider accepts it.
            KMS_KEY_ID=alias,
            JWT_SECRET=JWT_SECRET,
            RUST_LOG="info",
        )
        # Queue the first request before the function exists, then start it: the time from
        # exec to the answer is the cold start (process start, runtime init, one request).
        first: list[float] = []
        box: dict = {}
        first_thread = threading.Thread(
            target=lambda: box.update(answer=request(base, "GET", "/health")), daemon=True
        )
        first_thread.start()
        time.sleep(0.5)
        spawned = time.perf_counter()
        with open(function_log, "wb") as out:
            function = subprocess.Popen([str(binary)], env=function_env, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        first_thread.join(timeout=60)
        expect("answer" in box, "the first request got no answer within 60 s")
        cold = time.perf_counter() - spawned
        status, env, _ = box["answer"]
        expect(status == 200 and env["status"] == "OK", f"first /health: {status} {env}")
        warm_health = [request(base, "GET", "/health")[2] for _ in range(10)]
        warm = seed_flow(base, token, first)
        result = {
            "cold_start_ms": round(cold * 1000, 1),
            "warm_health_median_ms": round(statistics.median(warm_health) * 1000, 1),
            "warm_get_median_ms": round(statistics.median(warm) * 1000, 1),
            "set_master_password_ms": round(first[0] * 1000, 1),
            "profile": profile,
        }
        print("E2E_RESULT " + json.dumps(result), flush=True)
        log(f"seed flow passed under cargo lambda watch: {result}")
        return 0
    except (Failure, subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        log(f"FAILED: {err}")
        for name, path in (("cargo lambda watch", watch_log), ("api-fn", function_log)):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-20:]
                log(f"{name} log (last 20 lines):\n" + "\n".join(tail))
        return 1
    finally:
        if function is not None and function.poll() is None:
            function.terminate()
            try:
                function.wait(timeout=10)
            except subprocess.TimeoutExpired:
                function.kill()
                function.wait()
        if proc is not None and proc.poll() is None:
            # The emulator spawns the function as a child: end the whole group we created.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if provisioned:
            try:
                provision(args.python, table, alias, destroy=True)
            except Failure as err:
                log(f"cleanup: {err}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
