#!/usr/bin/env bash
# Runs every check CI runs: `scripts/test.sh [STEP...]` (default: all steps, in order).
#
# Each step is a function `step_<name>` listed in STEPS. A step passes (exit 0), fails (any
# other code) or is skipped (exit 77: a tool is missing outside CI). Under CI=true a missing
# tool is a failure, never a skip. All steps run; the summary at the end lists each result and
# the script exits non-zero if any step failed. FAIL_FAST=1 stops at the first failure.
#
# Adding a suite: write `step_<name>() { ...; }` and add <name> to STEPS.
# Later work orders add more suites here: helm (chart lint + template), chart (schema
# validation of the rendered manifests, committed deploy/ diff check) and conformance (the
# driver's own Go client against the real binary).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

STEPS=(
  venv
  fmt
  clippy
  doc
  test
  soak
  demo
  conformance
  cluster
  image
  chart
  alerts
  deploy-drift
  shellcheck
  workflows
  security-doc
  fuzz
  e2e
)

step_venv() {
  ensure_venv
  "$VENV_PYTHON" -c 'import importlib.metadata as m
print(", ".join(f"{p} {m.version(p)}" for p in ("moto", "boto3", "grpcio", "grpcio-tools")))'
}

# A rustup component (rustfmt, clippy) the toolchain lacks is added with rustup.
ensure_rust_component() {
  local component="$1" probe="$2"
  cargo "$probe" --version >/dev/null 2>&1 && return 0
  if command -v rustup >/dev/null 2>&1; then
    log "installing the ${component} component (rustup)"
    rustup component add "$component" >/dev/null 2>&1 || warn "rustup component add ${component} failed"
  fi
  need_tool "$component" "rustup component add ${component}" cargo "$probe" --version
}

step_fmt() {
  ensure_rust_component rustfmt fmt || return
  cargo fmt --all -- --check
}

step_clippy() {
  ensure_rust_component clippy clippy || return
  cargo clippy --all-targets -- -D warnings
}

# The API documentation builds without a warning (broken intra-doc links, missing docs on the
# public API). Warm: ~20 s.
step_doc() {
  RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
}

step_test() {
  need_tool cargo "Rust toolchain" || return
  ensure_venv # tests find moto_server through MOTO_SERVER
  cargo test
}

# The one-minute soak (tests/load/, `#[ignore]`d in `cargo test`; the 500 concurrent mounts
# of the same file ran in the test step): pods re-syncing while values rotate, readers checking
# every read for one consistent set, RSS and descriptors flat. ~70 s once the test step built it.
# `scripts/soak.sh` runs the ten-minute version.
step_soak() {
  need_tool cargo "Rust toolchain" || return
  SOAK_SECONDS="${SOAK_SECONDS:-60}" scripts/soak.sh --soak-only
}

# The README quick start itself (scripts/demo.sh: moto, a mount, a rotation past the cache TTL),
# so it stays true. ~20 s once the debug build exists.
step_demo() {
  scripts/demo.sh
}

# The driver's own Go client code (sigs.k8s.io/secrets-store-csi-driver, pkg/secrets-store) at
# v1.6.x and v1.5.x calling the real binary against moto: tests/driver-conformance/README.md.
# Cold Go caches: ~120 module downloads (<1 min) and ~9 CPU-minutes of compiling for both modules
# (~5 min on 2 idle cores); warm: ~20 s per module.
step_conformance() {
  need_tool go "Go toolchain, for the driver's Go client" || return
  need_tool cargo "Rust toolchain" || return
  ensure_venv # exports MOTO_SERVER and VENV_PYTHON (boto3 seeds moto)
  cargo build --bin csi-provider-aws
  export PROVIDER_BIN="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/debug/csi-provider-aws"
  local module start
  for module in v1.6 v1.5; do
    log "driver ${module} client: go test in tests/driver-conformance/${module}"
    start=$SECONDS
    (cd "tests/driver-conformance/${module}" && go test -count=1 -timeout 5m -v ./...)
    log "driver ${module} client: passed in $((SECONDS - start))s (module download, build and run)"
  done
}

# The provider in a real control plane (tests/cluster/README.md): etcd, kube-apiserver, the real
# driver binaries v1.6.x and v1.5.x as root host processes, our chart installed with helm (its
# RBAC enforced on the provider), moto behind a proxy that can deny or fail, a Pod Identity agent
# stand-in; the scenarios for both driver versions in both write modes. Builds kube-apiserver and
# the drivers into a cache keyed by versions (CLUSTER_CACHE) and shares the Go caches with the
# conformance step. Runs as root (or through password-less sudo). Cold (empty Go build cache):
# ~21 min measured on 2 shared cores (kube-apiserver ~13.5, each driver ~2.7); cached: ~2 min.
step_cluster() {
  bash tests/cluster/run.sh
}

# Not in STEPS (its cold cost does not fit CI; run it by name: scripts/test.sh cluster-pods):
# the cluster step's control plane plus a real node, kubelet v1.35 and Debian's containerd, runc
# and CNI plugins, as the test's own processes on a bridge of its own, with kube-controller-manager
# and kube-scheduler. Our chart's DaemonSet runs as a real pod of our image (scripts/build-image.sh, in a private Docker engine), the driver as
# a host process registered with kubelet, and app pods read their SecretProviderClass volumes
# from inside their containers (tests/cluster/README.md). Every host change is undone after.
step_cluster-pods() {
  bash tests/cluster/run.sh pods
}

# The container image, built and run: scripts/check-image.sh (a Docker engine, started here when
# none answers; the shared static release build; --version with --network none; the provider in
# a container, Version and a Mount through the bind-mounted socket, the written files checked).
# Cold: the release build (~15 min on 2 cores); warm: ~30 s.
step_image() {
  scripts/check-image.sh
}

# With Helm 4 and Helm 3: helm lint + helm template (default values, ci/*-values.yaml: fully
# populated, a Go-chart values file, the Go chart's own defaults) and their NOTES, the same from
# both Helms, refusals, helm package (target/chart/), kubernetes-validate --strict (Kubernetes
# 1.33) of the rendered chart, deploy/ and the e2e manifests, chart assertions and metadata,
# rendered args parsed by the binary; then the IAM documents (scripts/check-iam-docs.sh).
# Installs helm and helm3 (.tools/) and kubernetes-validate (.venv) when missing. Warm: ~35 s.
step_chart() {
  scripts/check-chart.sh
  scripts/check-iam-docs.sh
}

# The chart's alerts: each alert's shape, its runbook section (docs/runbook.md), the metrics it
# names, a unit test expecting it to fire, a runbook section per error code; then promtool
# check/test rules when promtool is in .tools/bin (its cold build does not fit this step's five
# minutes: `PROMTOOL_BUILD=1 scripts/check-alerts.sh` builds and runs it). Warm: ~5 s.
step_alerts() {
  scripts/check-alerts.sh
}

# deploy/csi-provider-aws.yaml (and the chart's dashboard copy) must match the chart.
step_deploy-drift() {
  scripts/render-deploy.sh --check
}

# Every shell script: scripts/, .ci/, tests/ (bats files included).
step_shellcheck() {
  # shellcheck source=scripts/tools.sh
  source scripts/tools.sh
  ensure_apt_tool shellcheck || return
  local files=() file
  while IFS= read -r -d '' file; do
    if [[ "$file" == *.sh || "$file" == *.bash || "$file" == *.bats ]] ||
      head -n 1 "$file" | grep -Eq '^#!.*(bash|/sh)'; then
      files+=("$file")
    fi
  done < <(find scripts .ci tests -type f ! -path '*/testdata/*' ! -name '*.py' ! -name '*.rs' \
    ! -name '*.go' ! -name '*.yaml' ! -name '*.json' ! -name '*.md' -print0)
  log "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ${#files[@]} files"
  shellcheck -x "${files[@]}"
}

# .github/workflows/*.yml with actionlint (pinned, installed into .tools/bin with `go install`),
# which also runs shellcheck on their `run:` scripts; the chart's default image is what
# release.yml publishes (scripts/check-release.sh). Cold: ~1 min (go install); warm: ~2 s.
step_workflows() {
  scripts/check-release.sh
  # shellcheck source=scripts/tools.sh
  source scripts/tools.sh
  ensure_apt_tool shellcheck || return
  ensure_actionlint || return
  log "actionlint $("$ACTIONLINT" -version | head -n 1): $(find .github/workflows -name '*.yml' | wc -l) workflows"
  "$ACTIONLINT" -shellcheck "$(command -v shellcheck)"
}

# SECURITY.md is true to the code: every file it names exists and every test it names is a
# function in src/ or tests/. Instant.
step_security-doc() {
  need_tool python3 "Python 3" || return
  python3 scripts/check_security_doc.py SECURITY.md
}

# The cargo-fuzz targets (fuzz/README.md): cargo-fuzz installed when missing, every target built
# (--dev, no sanitizer, so stable Rust will do) into target/fuzz/ (its own directory: the fuzz
# crate's features and flags share no compiled crate with the other steps), then each run for
# FUZZ_SECONDS, FUZZ_JOBS at a time, on a 2 MiB stack (FUZZ_STACK_KIB, a tokio worker's), from
# its committed seeds plus the corpus earlier local runs grew (target/fuzz/corpus/<target>/).
# A crash, a stack overflow, an input slower than FUZZ_TIMEOUT seconds or over 2 GiB RSS fails
# the step and names the input saved under fuzz/artifacts/<target>/. FUZZ_SANITIZER=address
# builds with ASan (RUSTC_BOOTSTRAP=1). Cold ~7 min on 2 CPUs (install 1 min, build 5 min, runs
# 1 min); warm ~70 s.
step_fuzz() {
  need_tool cargo "Rust toolchain" || return
  # shellcheck source=scripts/tools.sh
  source scripts/tools.sh
  ensure_cargo_fuzz || return
  local sanitizer="${FUZZ_SANITIZER:-none}" seconds="${FUZZ_SECONDS:-20}" timeout="${FUZZ_TIMEOUT:-10}"
  local stack_kib="${FUZZ_STACK_KIB:-2048}" # the inputs run on a stack the size of a tokio worker's
  local parallel="${FUZZ_JOBS:-$(nproc)}" work="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/fuzz"
  [[ "$sanitizer" == none ]] || export RUSTC_BOOTSTRAP=1 # -Zsanitizer on a stable toolchain
  local flags=(--dev --sanitizer "$sanitizer" --target-dir "${work}/build-${sanitizer}")
  local start=$SECONDS
  cargo fuzz build "${flags[@]}"
  log "fuzz targets built in $((SECONDS - start))s; fuzzing each for ${seconds}s, ${parallel} at a time"
  local targets=() target broken=()
  mapfile -t targets < <(cargo fuzz list)
  mkdir -p "${work}/logs"
  for target in "${targets[@]}"; do
    while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
    _fuzz_run "$target" &
  done
  wait
  for target in "${targets[@]}"; do
    if [[ "$(<"${work}/logs/${target}.rc")" == 0 ]]; then
      _fuzz_summary "$target" "${work}/logs/${target}.log"
    else
      broken+=("$target")
      _fuzz_failure "${work}/logs/${target}.log" >&2
      warn "${target}: $(grep -ho 'Test unit written to .*' "${work}/logs/${target}.log" ||
        echo "no input saved; log: ${work}/logs/${target}.log")"
    fi
  done
  ((${#broken[@]} == 0)) || die "fuzz targets failed: ${broken[*]} (fuzz/README.md: reproduce, minimize, add a regression)"
}

# Runs one target (step_fuzz's locals in scope); its output goes to logs/TARGET.log and its exit
# code to logs/TARGET.rc.
_fuzz_run() {
  local target="$1" rc=0
  rm -f "${work}/logs/${target}.rc"
  mkdir -p "${work}/corpus/${target}"
  (
    ulimit -s "$stack_kib"
    cargo fuzz run "${flags[@]}" "$target" "${work}/corpus/${target}" "fuzz/corpus/${target}" -- \
      -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 -print_final_stats=1
  ) >"${work}/logs/${target}.log" 2>&1 || rc=$?
  echo "$rc" >"${work}/logs/${target}.rc"
}

# What a failed run says: from the panic or libFuzzer's error to cargo-fuzz's reproduce and
# minimize commands, without the input's Debug dump; the whole log's tail when neither is there.
_fuzz_failure() {
  if grep -Eq 'panicked at|ERROR: ' "$1"; then
    awk '/panicked at|ERROR: / { on = 1 } /^Output of `std::fmt::Debug`:/ { skip = 1 }
      /^Reproduce with:/ { skip = 0 } on && !skip { print } /^Error: Fuzz target exited/ { exit }' "$1" |
      cut -c1-300 | head -n 80
  else
    tail -n 30 "$1"
  fi
}

# One line per target from libFuzzer's final stats.
_fuzz_summary() {
  local stats runs per_sec new rss
  stats="$(sed -n 's/^stat::\(number_of_executed_units\|average_exec_per_sec\|new_units_added\|peak_rss_mb\): *//p' "$2" |
    paste -sd' ')"
  read -r runs per_sec new rss <<<"$stats"
  log "$1: ${runs:-?} runs, ${per_sec:-?} exec/s, ${new:-?} new units, peak RSS ${rss:-?} MB"
}

# The kind suite (tests/e2e/run.sh): runs where Docker and kind are; where they are not (as on
# machines without registry access, CI=true included) it prints why and is skipped (exit 77).
step_e2e() {
  bash tests/e2e/run.sh
}

# ---------------------------------------------------------------------------------------------

declare -A RESULT=()
declare -A ELAPSED=()

run_step() {
  local name="$1" start rc
  declare -F "step_${name}" >/dev/null || die "unknown step '${name}' (steps: ${STEPS[*]})"
  log_section "$name"
  start=$SECONDS
  set +e
  (
    set -euo pipefail
    "step_${name}"
  )
  rc=$?
  set -e
  ELAPSED[$name]=$((SECONDS - start))
  case $rc in
    0) RESULT[$name]=PASS ;;
    "$SKIP_CODE") RESULT[$name]=SKIP ;;
    *) RESULT[$name]="FAIL (exit ${rc})" ;;
  esac
  log "${name}: ${RESULT[$name]} in ${ELAPSED[$name]}s"
}

# True when a step ran and failed.
step_failed() {
  [[ "${RESULT[$1]:-}" == FAIL* ]]
}

main() {
  local selected=("$@") name failed=0
  ((${#selected[@]})) || selected=("${STEPS[@]}")
  is_ci && log "CI=true: missing tools fail instead of skipping"

  # run_step must never be called in a condition (if/!/&&/||): bash ignores `set -e` inside
  # such a call, subshells included, so a failing command in a step would not fail the step.
  for name in "${selected[@]}"; do
    run_step "$name"
    if step_failed "$name"; then
      failed=1
      if [[ "${FAIL_FAST:-0}" == 1 ]]; then break; fi
    fi
  done

  log_section "summary"
  for name in "${selected[@]}"; do
    printf '  %-10s %-16s %ss\n' "$name" "${RESULT[$name]:-not run}" "${ELAPSED[$name]:--}" >&2
  done
  if ((failed)); then
    printf '%sFAILED%s\n' "$_C_RED" "$_C_OFF" >&2
    return 1
  fi
  printf '%sOK%s\n' "$_C_BOLD" "$_C_OFF" >&2
}

main "$@"
