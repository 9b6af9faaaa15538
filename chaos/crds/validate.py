#!/usr/bin/env python3
"""Validates Chaos Mesh and k6-operator manifests against the CRDs vendored beside this file.

Usage: validate.py FILE... ("-" reads standard input; files may hold several documents).

Strict, as `kubectl apply --validate=strict` is: besides types, enums, patterns and required
fields, a field the schema does not name is an error (every object schema with `properties`
is closed unless it says `x-kubernetes-preserve-unknown-fields` or has `additionalProperties`).
Each document's apiVersion and kind must be one of the vendored CRDs'. Prints one line per
error (file, document, path, message) and exits 1 if there is any, 0 otherwise.
"""
import glob
import json
import os
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def closed(schema):
    """The schema with every object that lists its properties closed to others."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def load_crds():
    """(apiVersion, kind) -> a validator of the whole object."""
    validators = {}
    for path in sorted(glob.glob(os.path.join(HERE, "*.json"))):
        with open(path) as f:
            crd = json.load(f)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = closed(version["schema"]["openAPIV3Schema"])
            # metadata is the API server's (ObjectMeta), not the CRD's: only its name is checked.
            schema["properties"]["metadata"] = {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"}},
            }
            schema.setdefault("required", [])
            schema["required"] = sorted(set(schema["required"]) | {"apiVersion", "kind", "metadata", "spec"})
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def documents(path):
    text = sys.stdin.read() if path == "-" else open(path).read()
    return [d for d in yaml.safe_load_all(text) if d is not None]


def main(paths):
    validators = load_crds()
    errors = 0
    for path in paths:
        for i, doc in enumerate(documents(path)):
            where = f"{path} #{i + 1} {doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"
            validator = validators.get((doc.get("apiVersion"), doc.get("kind")))
            if validator is None:
                print(f"{where}: no vendored CRD for {doc.get('apiVersion')} {doc.get('kind')}")
                errors += 1
                continue
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                field = ".".join(str(p) for p in error.absolute_path) or "(root)"
                print(f"{where}: {field}: {error.message}")
                errors += 1
    print(f"{errors} error(s)" if errors else "valid")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
