#!/usr/bin/env bash
# Checks the code blocks of docs/*.md: JSON parses, IAM policies name only actions that exist
# (botocore's service models, from the .venv), shell blocks pass shellcheck
# (scripts/check_iam_docs.py extracts them). Run by scripts/test.sh (step chart).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/tools.sh
source "${REPO_ROOT}/scripts/tools.sh"
cd "$REPO_ROOT"

ensure_venv
ensure_apt_tool shellcheck || exit
OUT="$(mktemp -d "${TMPDIR:-/tmp}/docs-check.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT

log "docs/*.md: JSON and IAM actions"
"$VENV_PYTHON" scripts/check_iam_docs.py "$OUT" docs/*.md
shopt -s nullglob
snippets=("$OUT"/*.sh)
log "docs/*.md: shellcheck of ${#snippets[@]} shell blocks"
((${#snippets[@]} == 0)) || shellcheck -s bash "${snippets[@]}"
log "docs OK"
