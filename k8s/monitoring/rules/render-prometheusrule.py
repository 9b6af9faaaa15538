#!/usr/bin/env python3
"""Writes ../prometheusrule.yaml: the groups of chat.rules.yml wrapped as a prometheus-operator
PrometheusRule. Run after every change to chat.rules.yml; ops/tests fail while the two differ."""
import pathlib

import yaml

HERE = pathlib.Path(__file__).resolve().parent
HEADER = """\
# Generated from rules/chat.rules.yml by rules/render-prometheusrule.py: edit that file, then
# run the script. The cell's Prometheus rules for prometheus-operator.
"""


def literal_multiline(dumper, text):
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


yaml.SafeDumper.add_representer(str, literal_multiline)
rules = yaml.safe_load((HERE / "chat.rules.yml").read_text())
resource = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PrometheusRule",
    "metadata": {"name": "chat-cell", "labels": {"app.kubernetes.io/name": "chat-cell"}},
    "spec": {"groups": rules["groups"]},
}
body = yaml.safe_dump(resource, sort_keys=False, width=200)
(HERE.parent / "prometheusrule.yaml").write_text(HEADER + body)
