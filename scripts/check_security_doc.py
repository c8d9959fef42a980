#!/usr/bin/env python3
"""Checks that SECURITY.md is true to the code: every file it names exists, and every test it
names (a backticked snake_case name with three or more words) is a function in that tree.

Usage: scripts/check_security_doc.py [SECURITY.md]
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
doc = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "SECURITY.md"
text = doc.read_text()

sources = [p for d in ("src", "tests") for p in (root / d).rglob("*.rs")]
functions = set()
for path in sources:
    functions.update(re.findall(r"\bfn\s+([a-z_][a-z0-9_]*)", path.read_text()))

problems = []
for name in sorted(set(re.findall(r"`((?:src|tests|fuzz|scripts)/[A-Za-z0-9_./-]+)`", text))):
    if not (root / name).exists():
        problems.append(f"{doc.name} names {name}, which does not exist")
for name in sorted(set(re.findall(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+){2,})`", text))):
    if name not in functions:
        problems.append(f"{doc.name} names test {name}, which is not a function in src/ or tests/")

for problem in problems:
    print(problem, file=sys.stderr)
print(f"{doc.name}: {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
