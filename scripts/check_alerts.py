#!/usr/bin/env python3
"""Checks the chart's alerts without Prometheus: their shape, their runbook links, the metrics
they name, and that each has a unit test that expects it to fire.

    check_alerts.py RENDERED_PROMETHEUSRULE.yaml RULES_OUT.yaml

Writes the PrometheusRule's spec as a plain Prometheus rule file (RULES_OUT) for promtool.
Used by scripts/check-alerts.sh."""

import glob
import re
import sys

import yaml

REPO = __file__.rsplit("/scripts/", 1)[0]
SEVERITIES = {"critical", "warning", "info"}
PREFIX = "csi_provider_aws_"


def fail(message):
    print(f"check_alerts: {message}", file=sys.stderr)
    sys.exit(1)


def github_anchor(heading):
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def runbook_anchors():
    with open(f"{REPO}/docs/runbook.md", encoding="utf-8") as f:
        return {github_anchor(line.lstrip("#")) for line in f if line.startswith("#")}


def error_codes():
    with open(f"{REPO}/src/codes.rs", encoding="utf-8") as f:
        return re.findall(r'ErrorCode::\w+ => "(\w+)"', f.read())


def exported_names():
    """Names registered in src/metrics.rs (prefixed) and the process metrics' names."""
    names = set()
    with open(f"{REPO}/src/metrics.rs", encoding="utf-8") as f:
        names |= {PREFIX + n for n in re.findall(r'r\.register\(\s*"(\w+)"', f.read())}
    with open(f"{REPO}/src/metrics/process.rs", encoding="utf-8") as f:
        names |= set(re.findall(r'"(process_\w+)"', f.read()))
    return names


def is_exported(name, names):
    if name in names:
        return True
    for suffix in ("_total", "_bucket", "_sum", "_count", "_info"):
        if name.endswith(suffix) and name[: -len(suffix)] in names:
            return True
    return False


def tested_alerts():
    fired = set()
    for path in glob.glob(f"{REPO}/tests/alerts/*.test.yaml"):
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
    return fired


def main():
    rendered, out = sys.argv[1], sys.argv[2]
    with open(rendered, encoding="utf-8") as f:
        rule = yaml.safe_load(f)
    if rule.get("kind") != "PrometheusRule":
        fail(f"{rendered} is not a PrometheusRule")
    spec = rule["spec"]
    anchors, names, fired = runbook_anchors(), exported_names(), tested_alerts()
    alerts = []
    for group in spec["groups"]:
        for r in group["rules"]:
            name = r.get("alert") or fail(f"a rule without an alert name: {r}")
            alerts.append(name)
            for key in ("expr", "for", "labels", "annotations"):
                if not r.get(key):
                    fail(f"{name}: no {key}")
            if r["labels"].get("severity") not in SEVERITIES:
                fail(f"{name}: severity must be one of {sorted(SEVERITIES)}")
            ann = r["annotations"]
            for key in ("summary", "description", "runbook_url"):
                if not ann.get(key):
                    fail(f"{name}: no {key} annotation")
            anchor = ann["runbook_url"].rsplit("#", 1)[-1]
            if anchor != name.lower() or anchor not in anchors:
                fail(f"{name}: runbook_url must end in #{name.lower()}, a heading of docs/runbook.md")
            for metric in set(re.findall(r"\b(csi_provider_aws_\w+|process_\w+)\b", r["expr"])):
                if not is_exported(metric, names):
                    fail(f"{name}: {metric} is not a metric the provider exports")
            if name not in fired:
                fail(f"{name}: no unit test in tests/alerts/*.test.yaml expects it to fire")
    if len(set(alerts)) != len(alerts):
        fail(f"duplicate alert names: {alerts}")
    for code in error_codes():
        if code.lower() not in anchors:
            fail(f"docs/runbook.md has no section for the error code {code}")
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    print(f"check_alerts: {len(alerts)} alerts, {len(error_codes())} error codes: runbook sections, "
          f"metrics and unit tests present")


if __name__ == "__main__":
    main()
