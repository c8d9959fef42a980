"""Checks the code blocks of the given markdown files (docs/iam.md, the migration guide).

    python scripts/check_iam_docs.py OUT_DIR FILE.md...

- every ```json block parses; one that holds an IAM policy (a `Statement`) is checked: Version
  2012-10-17, each statement with Effect Allow/Deny, and every action named in full
  (`service:Operation`, no wildcards) and known to botocore's service model of that service,
  except the few IAM permissions that have no API operation (PERMISSION_ONLY);
- every ```sh / ```bash block is written to OUT_DIR/<file>-<n>.sh for shellcheck (the caller
  runs it: scripts/check-iam-docs.sh).
"""

import json
import re
import sys
from pathlib import Path

import botocore.loaders

# IAM permissions that are not API operations, so no service model lists them.
PERMISSION_ONLY = {"sts:TagSession"}
# IAM action prefix -> botocore service name, where they differ.
SERVICE_NAMES = {}

FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```$", re.M | re.S)
LOADER = botocore.loaders.Loader()
OPERATIONS = {}
FAILURES = []


def operations(service):
    if service not in OPERATIONS:
        model = LOADER.load_service_model(SERVICE_NAMES.get(service, service), "service-2")
        OPERATIONS[service] = set(model["operations"])
    return OPERATIONS[service]


def check_action(where, action):
    if action in PERMISSION_ONLY:
        return
    service, _, operation = action.partition(":")
    if not operation or "*" in action or "?" in action:
        FAILURES.append(f"{where}: action {action!r}: name it in full (service:Operation)")
        return
    try:
        known = operations(service)
    except Exception as e:  # an unknown service prefix
        FAILURES.append(f"{where}: action {action!r}: no service model for {service!r} ({e})")
        return
    if operation not in known:
        FAILURES.append(f"{where}: action {action!r}: {service} has no operation {operation!r}")


def check_policy(where, doc):
    if doc.get("Version") != "2012-10-17":
        FAILURES.append(f"{where}: Version must be 2012-10-17")
    statements = doc["Statement"]
    for i, st in enumerate(statements if isinstance(statements, list) else [statements]):
        if st.get("Effect") not in ("Allow", "Deny"):
            FAILURES.append(f"{where}: Statement[{i}] Effect {st.get('Effect')!r}")
        actions = st.get("Action")
        if not actions:
            FAILURES.append(f"{where}: Statement[{i}] has no Action")
            continue
        for action in [actions] if isinstance(actions, str) else actions:
            check_action(f"{where} Statement[{i}]", action)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    policies = scripts = 0
    for md in map(Path, sys.argv[2:]):
        text = md.read_text()
        for n, m in enumerate(FENCE.finditer(text), 1):
            lang, body = m.group(1), m.group(2)
            line = text.count("\n", 0, m.start()) + 1
            where = f"{md}:{line}"
            if lang == "json":
                try:
                    doc = json.loads(body)
                except json.JSONDecodeError as e:
                    FAILURES.append(f"{where}: JSON does not parse: {e}")
                    continue
                if isinstance(doc, dict) and "Statement" in doc:
                    check_policy(where, doc)
                    policies += 1
            elif lang in ("sh", "bash"):
                (out / f"{md.stem}-{line}.sh").write_text(f"#!/usr/bin/env bash\n# {where}\n{body}")
                scripts += 1
    if FAILURES:
        print("documentation checks failed:", *FAILURES, sep="\n  ", file=sys.stderr)
        return 1
    print(f"{policies} IAM policies valid (actions known to botocore), {scripts} shell blocks extracted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
