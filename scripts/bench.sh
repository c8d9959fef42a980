#!/usr/bin/env bash
# Runs the re-sync benchmark of issue 4 (benches/resync.rs): builds the release provider (the
# static binary of the image, shared with scripts/build-image.sh and CI's image step), runs
# `cargo bench --bench resync` (about 2 minutes: AWS calls per re-sync round counted on the wire
# at a local fake endpoint, cold mount, mount latency, peak RSS, and the tail: repetitions of 50
# concurrent clients spaced past every cache lifetime, for --cache-ttl 0 and the default), and
# prints where the table is. Sections (spc, a, b, latency, rss, tail) run alone when named. Not
# part of scripts/test.sh. Exits non-zero when a target is missed.
#
#   scripts/bench.sh                 # everything (~5 minutes of runs)
#   scripts/bench.sh tail            # only the tail (~3 minutes; TAIL_REPETITIONS, default 8)
#   TAIL_SA_TTL=default scripts/bench.sh tail   # the provider's 30 s service-account cache
#                                    # (repetitions 31 s apart; also runs a build without the flag)
#   PROVIDER_BIN=/path/to/csi-provider-aws scripts/bench.sh   # benchmark another build
#   scripts/bench.sh fleet           # the fleet simulator (benches/fleet.rs, docs/fleet.md):
#                                    # 100, 1,000 and 5,000 nodes, ours against the Go pattern
#   scripts/bench.sh fleet 5000 budget   # one configuration; FLEET_QUOTAS=higher for Parameter
#                                    # Store's higher throughput
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

TARGET_DIR="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}"
REPORT="${TARGET_DIR}/bench/resync.md"

if [[ "${1:-}" == "fleet" ]]; then
  shift
  log_section "bench: fleet ${*:-(100, 1000, 5000 nodes)}"
  start=$SECONDS
  # No provider binary: the simulator runs the library's code in process. LTO off: the run is
  # CPU-bound in our code, not in what fat LTO speeds up, and the build is minutes shorter.
  CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 cargo bench --bench fleet -- "$@"
  log "fleet simulator finished in $((SECONDS - start))s; table: ${TARGET_DIR}/bench/fleet.md"
  exit 0
fi

if [[ -z "${PROVIDER_BIN:-}" ]]; then
  log_section "build (the shared static release binary)"
  build_release_binary # the binary the image ships; a no-op when CI already built it
  export PROVIDER_BIN="$RELEASE_BIN"
fi

log_section "bench: resync ${*:-(every section)}"
start=$SECONDS
set +e
cargo bench --bench resync -- "$@"
rc=$?
set -e
log "benchmark finished in $((SECONDS - start))s (exit ${rc})"
if [[ -f "$REPORT" ]]; then
  log "table: ${REPORT}"
else
  warn "no table was written (${REPORT})"
fi
exit "$rc"
