#!/usr/bin/env bash
# Runs the re-sync benchmark of issue 4 (benches/resync.rs): builds the release provider (the
# static binary of the image, shared with scripts/build-image.sh and CI's image step), runs
# `cargo bench --bench resync` (about 2 minutes: AWS calls per re-sync round counted on the wire
# at a local fake endpoint, cold mount, mount latency, peak RSS), and prints where the table is.
# Not part of scripts/test.sh. Exits non-zero when a target is missed.
#
#   scripts/bench.sh
#   PROVIDER_BIN=/path/to/csi-provider-aws scripts/bench.sh   # benchmark another build
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

TARGET_DIR="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}"
REPORT="${TARGET_DIR}/bench/resync.md"

if [[ -z "${PROVIDER_BIN:-}" ]]; then
  log_section "build (the shared static release binary)"
  build_release_binary # the binary the image ships; a no-op when CI already built it
  export PROVIDER_BIN="$RELEASE_BIN"
fi

log_section "bench: resync"
start=$SECONDS
set +e
cargo bench --bench resync
rc=$?
set -e
log "benchmark finished in $((SECONDS - start))s (exit ${rc})"
if [[ -f "$REPORT" ]]; then
  log "table: ${REPORT}"
else
  warn "no table was written (${REPORT})"
fi
exit "$rc"
