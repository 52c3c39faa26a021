#!/usr/bin/env python3
"""Check stack parameter values against infra/template.yaml before anything is deployed.

CloudFormation itself rejects a value outside a parameter's AllowedValues, AllowedPattern,
MinValue/MaxValue or MinLength/MaxLength, but only after the deploy tool has packaged and
uploaded the artifact. infra/deploy.sh runs this first so a bad value stops the deploy at once,
with one line per problem naming the parameter; infra/check.sh runs it on good and bad values
to prove the template's ranges are real. The rules follow CloudFormation's: patterns must match
the whole value, numbers are compared numerically, a parameter without Default is required.

usage: validate_params.py [--template infra/template.yaml] PARAMS.json | Key=Value ...
  PARAMS.json: {"Key": "Value", ...} or [{"ParameterKey": ..., "ParameterValue": ...}, ...]
Exit status: 0 valid, 1 invalid (problems on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

try:
    from cfnlint.decode import decode_str  # understands !Ref, !Sub, ... (installed with cfn-lint)
except ImportError:  # pragma: no cover
    sys.stderr.write("validate_params.py: needs cfn-lint (pip install -r infra/requirements.txt)\n")
    sys.exit(2)

DEFAULT_TEMPLATE = Path(__file__).resolve().parent / "template.yaml"


def load_parameters(template: Path) -> dict:
    parsed, matches = decode_str(template.read_text())
    if parsed is None:
        raise SystemExit(f"validate_params.py: cannot parse {template}: {matches}")
    return dict(parsed.get("Parameters", {}))


def load_values(args: list[str]) -> dict[str, str]:
    if len(args) == 1 and "=" not in args[0]:
        data = json.loads(Path(args[0]).read_text())
        if isinstance(data, list):
            return {str(p["ParameterKey"]): str(p["ParameterValue"]) for p in data}
        return {str(k): str(v) for k, v in data.items()}
    values = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise SystemExit(f"validate_params.py: {arg!r} is not Key=Value")
        values[key] = value
    return values


def as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def check(name: str, spec: dict, value: str) -> list[str]:
    problems = []
    kind = spec.get("Type", "String")
    allowed = spec.get("AllowedValues")
    if kind == "Number":
        number = as_number(value)
        if number is None:
            return [f"{name}={value!r} is not a number"]
        if "MinValue" in spec and number < float(spec["MinValue"]):
            problems.append(f"{name}={value} is below the minimum {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            problems.append(f"{name}={value} is above the maximum {spec['MaxValue']}")
        if allowed is not None and number not in {float(a) for a in allowed}:
            problems.append(f"{name}={value} is not one of {', '.join(str(a) for a in allowed)}")
        return problems
    if allowed is not None and value not in {str(a) for a in allowed}:
        problems.append(f"{name}={value!r} is not one of {', '.join(str(a) for a in allowed)}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        problems.append(f"{name} is shorter than {spec['MinLength']} characters")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        problems.append(f"{name} is longer than {spec['MaxLength']} characters")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), value) is None:
        hint = spec.get("ConstraintDescription", f"pattern {pattern}")
        problems.append(f"{name}={value!r} is invalid: {hint}")
    return problems


def validate(parameters: dict, values: dict[str, str]) -> list[str]:
    problems = [f"{key} is not a parameter of the template" for key in values if key not in parameters]
    for name, spec in parameters.items():
        if name in values:
            problems += check(name, spec, values[name])
        elif "Default" not in spec:
            problems.append(f"{name} is required ({spec.get('Description', 'no default')})")
        else:
            # Defaults are checked too: a template whose default breaks its own rule is a bug.
            problems += [f"default: {p}" for p in check(name, spec, str(spec["Default"]))]
    return problems


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    p.add_argument("values", nargs="+", help="PARAMS.json or Key=Value pairs")
    args = p.parse_args(argv)
    parameters = load_parameters(args.template)
    problems = validate(parameters, load_values(args.values))
    for problem in problems:
        sys.stderr.write(f"invalid parameter: {problem}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
