#!/usr/bin/env bash
# Checks charts/csi-provider-aws: helm lint; helm template with the default values and with every
# charts/csi-provider-aws/ci/*-values.yaml (a fully populated file, and a values file written for
# the Go provider's chart, which must install unchanged); values the schema must refuse; strict
# validation of the rendered manifests, deploy/ and the e2e manifests against the Kubernetes
# schemas (kubernetes-validate); the chart's promises asserted on the rendered objects
# (scripts/check_chart.py); and the rendered provider arguments parsed by the real binary.
#
#   scripts/check-chart.sh                  # Kubernetes 1.33 schemas
#   KUBE_VERSION=1.35.0 scripts/check-chart.sh
#
# Installs helm (.tools/) and kubernetes-validate (.venv) when missing. Used by scripts/test.sh
# (step chart).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/tools.sh
source "${REPO_ROOT}/scripts/tools.sh"
cd "$REPO_ROOT"

CHART=charts/csi-provider-aws
KUBE_VERSION="${KUBE_VERSION:-1.33.0}"

ensure_helm || exit
ensure_kubernetes_validate || exit

OUT="$(mktemp -d "${TMPDIR:-/tmp}/chart-check.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT

render() { # render NAME [HELM ARGS...]: helm template into $OUT/NAME.yaml
  local name="$1"
  shift
  "$HELM" template csi-provider-aws "$CHART" --namespace kube-system "$@" >"${OUT}/${name}.yaml"
}

log "helm lint (default values and ci/*-values.yaml)"
"$HELM" lint --strict --quiet "$CHART"
for values in "$CHART"/ci/*-values.yaml; do
  "$HELM" lint --strict --quiet "$CHART" --namespace kube-system -f "$values"
done

log "helm template"
render default
for values in "$CHART"/ci/*-values.yaml deploy/examples/*-values.yaml tests/e2e/provider-values.yaml; do
  render "$(basename "$values" .yaml)" -f "$values"
done

log "values the schema refuses"
refused=0
for bad in \
  'endpoints[0]=kms=https://kms.example.com' \
  'log.format=xml' \
  'cache.ttl=forever' \
  'metrics.port=70000' \
  'k8sThrottlingParams.qps=fast' \
  'driverWritesSecrets=yes' \
  'image.pullPolicy=Sometimes' \
  'cache.typo=1' \
  'caBundle.configMap=a,caBundle.secret=b'; do
  if "$HELM" template x "$CHART" --set "$bad" >/dev/null 2>&1; then
    warn "helm template accepted --set ${bad}"
    refused=1
  fi
done
((refused == 0)) || die "the values schema accepted invalid values"

# Manifests kept in the repository (values files excluded).
shopt -s nullglob
manifests=(deploy/csi-provider-aws.yaml)
for file in deploy/examples/*.yaml tests/e2e/manifests/*.yaml; do
  [[ "$file" == *-values.yaml ]] || manifests+=("$file")
done

log "kubernetes-validate --strict (Kubernetes ${KUBE_VERSION})"
"$KUBERNETES_VALIDATE" --strict --quiet --no-warn -k "$KUBE_VERSION" "$OUT"/*.yaml "${manifests[@]}"

log "chart assertions and custom resources"
"$VENV_PYTHON" scripts/check_chart.py "$OUT" "${manifests[@]}"

log "rendered provider arguments parse (csi-provider-aws ARGS --version)"
if need_tool cargo "Rust toolchain, to parse the rendered arguments with the binary"; then
  bin="${PROVIDER_BIN:-}"
  if [[ -z "$bin" ]]; then
    cargo build --quiet --bin csi-provider-aws
    bin="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/debug/csi-provider-aws"
  fi
  # --ca-bundle must name a readable PEM file: use the system bundle in its place.
  system_ca=/etc/ssl/certs/ca-certificates.crt
  for rendered in "$OUT"/*.yaml; do
    mapfile -t args < <("$VENV_PYTHON" - "$rendered" "$system_ca" <<'EOF'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "DaemonSet":
        for arg in doc["spec"]["template"]["spec"]["containers"][0]["args"]:
            print("--ca-bundle=" + sys.argv[2] if arg.startswith("--ca-bundle=") else arg)
EOF
    )
    # Only the serve flags: the variables the SDK reads must not leak in from this shell.
    env -u AWS_CA_BUNDLE -u AWS_USE_FIPS_ENDPOINT -u AWS_USE_DUALSTACK_ENDPOINT \
      "$bin" "${args[@]}" --version >/dev/null ||
      die "$(basename "$rendered"): the binary refused the rendered arguments: ${args[*]}"
    log "  $(basename "$rendered"): ${#args[@]} arguments accepted"
  done
fi

log "chart OK"
