#!/usr/bin/env python3
"""Vendors the CRDs the manifests of chaos/ and k6/testrun.yaml are validated against.

Usage: vendor.py CHAOS_MESH_CHECKOUT K6_OPERATOR_CHECKOUT
(git work trees or bare repositories; the tags below are read with `git show`).

Each CRD is copied as it is at its tag into compact JSON (one file per CRD), with every
`description` dropped: the workflow and schedule CRDs are 0.6 and 0.85 MB of YAML with them,
~0.1 MB of JSON without. The schema's structure, types, enums and required fields are
untouched. SOURCE.md names the versions and commits.
"""
import json
import subprocess
import sys

import yaml

CHAOS_MESH_TAG = "v2.8.3"
K6_OPERATOR_TAG = "v1.6.0"
CHAOS_MESH_CRDS = ["podchaos", "networkchaos", "stresschaos", "iochaos", "workflows", "schedules"]


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def vendor(repo, tag, path, out):
    text = subprocess.run(
        ["git", "-C", repo, "show", f"{tag}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    (crd,) = [strip(d) for d in yaml.safe_load_all(text) if d]
    with open(out, "w") as f:
        json.dump(crd, f, separators=(",", ":"))
        f.write("\n")


def main():
    chaos_mesh, k6_operator = sys.argv[1], sys.argv[2]
    for name in CHAOS_MESH_CRDS:
        vendor(chaos_mesh, CHAOS_MESH_TAG, f"config/crd/bases/chaos-mesh.org_{name}.yaml", f"chaos-mesh.org_{name}.json")
    vendor(k6_operator, K6_OPERATOR_TAG, "config/crd/bases/k6.io_testruns.yaml", "k6.io_testruns.json")


if __name__ == "__main__":
    main()
