#!/usr/bin/env python3
"""Check localstack/docker-compose.yml where no Docker engine is available.

`docker compose config` is the real check and infra/check.sh prefers it when a compose client
exists. Without one, the compose-spec JSON schema (check-jsonschema's vendored copy, run by
infra/check.sh) proves the file's shape, and this script proves what the schema cannot: that
every build context, Dockerfile and bind-mounted file exists, that depends_on names defined
services with a health check when it waits for one, that ports are published on loopback only,
and that the required JWT_SECRET interpolation carries a message.

usage: check_compose.py [localstack/docker-compose.yml]   (exit 1 with one line per problem)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

DEFAULT = Path(__file__).resolve().parent / "docker-compose.yml"


def problems_in(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    base = path.parent
    services = doc.get("services") or {}
    problems: list[str] = []
    if not services:
        return [f"{path}: no services"]
    for name, svc in services.items():
        build = svc.get("build")
        if isinstance(build, str):
            build = {"context": build}
        if build:
            context = (base / build.get("context", ".")).resolve()
            if not context.is_dir():
                problems.append(f"{name}: build context {context} does not exist")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
        elif not svc.get("image"):
            problems.append(f"{name}: neither image nor build")
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")) and not source.startswith("/var/run/docker.sock"):
                if not (base / source).resolve().exists():
                    problems.append(f"{name}: volume source {source} does not exist")
        for port in svc.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{name}: port {port} is not published on 127.0.0.1 only")
        depends = svc.get("depends_on", {})
        if isinstance(depends, list):
            depends = {d: {} for d in depends}
        for dep, spec in depends.items():
            if dep not in services:
                problems.append(f"{name}: depends_on unknown service {dep}")
            elif (spec or {}).get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
                # A Dockerfile HEALTHCHECK also counts; look for one in the build.
                dep_build = services[dep].get("build") or {}
                dep_build = {"context": dep_build} if isinstance(dep_build, str) else dep_build
                dockerfile = (base / dep_build.get("context", ".")).resolve() / dep_build.get(
                    "dockerfile", "Dockerfile"
                )
                if not (dockerfile.is_file() and "HEALTHCHECK" in dockerfile.read_text()):
                    problems.append(f"{name}: waits for {dep} to be healthy but {dep} has no health check")
    text = path.read_text()
    if not re.search(r"\$\{JWT_SECRET:\?[^}]+\}", text):
        problems.append("JWT_SECRET must be required with a message (${JWT_SECRET:?...})")
    return problems


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT
    problems = problems_in(path)
    for problem in problems:
        sys.stderr.write(f"compose: {problem}\n")
    if not problems:
        print(f"compose: {path.name} ok ({len(yaml.safe_load(path.read_text())['services'])} services)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
