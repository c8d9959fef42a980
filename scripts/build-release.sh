#!/usr/bin/env bash
# Builds the static release binary of this machine's architecture (build_release_binary in
# scripts/lib.sh: the same build the image and CI use) and copies it to OUT.
#
#   scripts/build-release.sh dist/csi-provider-aws-linux-amd64
#
# The release workflow runs it on an amd64 and an arm64 runner (.github/workflows/release.yml).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

OUT="${1:?usage: scripts/build-release.sh OUT}"
build_release_binary
mkdir -p "$(dirname "$OUT")"
install -m 0755 "$RELEASE_BIN" "$OUT"
log "${OUT}: $(stat -c %s "$OUT") bytes, $("$OUT" --version)"
