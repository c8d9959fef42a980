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
  test
  soak
  demo
  conformance
  image
  chart
  deploy-drift
  shellcheck
  workflows
  security-doc
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
