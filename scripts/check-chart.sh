#!/usr/bin/env bash
# Checks charts/csi-provider-aws with Helm 4 and Helm 3: helm lint; helm template with the default
# values and with every charts/csi-provider-aws/ci/*-values.yaml (a fully populated file, a
# values file written for the Go provider's chart, and the Go chart's own defaults, which must
# install unchanged), the same output from both Helms; the NOTES each values file prints; values
# the schema or the templates must refuse; helm package (into target/chart/) and the packaged
# chart rendered again; strict validation of the rendered manifests, deploy/ and the e2e
# manifests against the Kubernetes schemas (kubernetes-validate); the chart's promises and
# metadata asserted (scripts/check_chart.py); and the rendered provider arguments parsed by the
# real binary.
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
ensure_helm3 || exit
ensure_kubernetes_validate || exit

OUT="$(mktemp -d "${TMPDIR:-/tmp}/chart-check.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT

render() { # render HELM DIR NAME [HELM ARGS...]: helm template into DIR/NAME.yaml
  local helm="$1" dir="$2" name="$3"
  shift 3
  mkdir -p "$dir"
  "$helm" template csi-provider-aws "$CHART" --namespace kube-system "$@" >"${dir}/${name}.yaml"
}

# NOTES.txt as `helm install` prints it, with no cluster (Helm 3.18's `install --dry-run=client`
# still wants one): a copy of the chart whose extra template renders NOTES.txt into a ConfigMap.
NOTES_CHART="${OUT}/notes-chart"
mkdir -p "$NOTES_CHART"
cp -r "$CHART"/. "$NOTES_CHART"
cp "$CHART/templates/NOTES.txt" "$NOTES_CHART/notes-source.txt"
cat >"$NOTES_CHART/templates/zz-notes.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: {{ tpl (.Files.Get "notes-source.txt") . | quote }}
EOF
notes() { # notes HELM NAME [HELM ARGS...]: the NOTES into $OUT/HELM/notes/NAME.txt
  local helm="$1" name="$2" dir
  shift 2
  dir="${OUT}/$(basename "$helm")/notes"
  mkdir -p "$dir"
  "$helm" template csi-provider-aws "$NOTES_CHART" --namespace kube-system "$@" \
    --show-only templates/zz-notes.yaml >"${dir}/${name}.yaml"
  "$VENV_PYTHON" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["notes"])' \
    "${dir}/${name}.yaml" >"${dir}/${name}.txt"
}

VALUES_FILES=("$CHART"/ci/*-values.yaml deploy/examples/*-values.yaml tests/e2e/provider-values.yaml)
for helm in "$HELM" "$HELM3"; do
  log "$("$helm" version --short): helm lint (default values and ci/*-values.yaml)"
  "$helm" lint --strict --quiet "$CHART"
  for values in "$CHART"/ci/*-values.yaml; do
    "$helm" lint --strict --quiet "$CHART" --namespace kube-system -f "$values"
  done
  log "$("$helm" version --short): helm template and NOTES"
  dir="${OUT}/$(basename "$helm")"
  render "$helm" "$dir" default
  notes "$helm" default
  for values in "${VALUES_FILES[@]}"; do
    render "$helm" "$dir" "$(basename "$values" .yaml)" -f "$values"
    notes "$helm" "$(basename "$values" .yaml)" -f "$values"
  done
  # The Go chart's rbac.serviceAccountName wins over ours.
  render "$helm" "$dir" rbac-sa --set rbac.serviceAccountName=go-named-sa --set serviceAccount.name=ours
done
log "Helm 3 and Helm 4 render the same manifests and NOTES"
diff -r "${OUT}/helm" "${OUT}/helm3" >&2 || die "Helm 3 and Helm 4 render the chart differently (diff above)"
# The checks below read Helm 4's output.
cp "${OUT}"/helm/*.yaml "$OUT"/
mkdir -p "${OUT}/notes"
cp "${OUT}"/helm/notes/*.txt "${OUT}/notes/"

log "refused with a message naming the value"
refuse() { # refuse MESSAGE HELM-ARGS...: helm template must fail and say MESSAGE
  local want="$1" err
  shift
  if err="$("$HELM" template x "$CHART" "$@" 2>&1 >/dev/null)"; then
    die "helm template accepted $*"
  fi
  [[ "$err" == *"$want"* ]] || die "helm template $* failed without naming the value (${want}): ${err}"
}
# A copy of the Go image in a private registry: it cannot run with our flags.
# shellcheck disable=SC2016 # the backticks are the message's own
refuse 'drop `image` from your values' \
  --set image.repository=123456789012.dkr.ecr.us-west-2.amazonaws.com/secrets-store-csi-driver-provider-aws
# cache.maxBytes defaults to half the memory limit: a limit it cannot halve must be told.
refuse 'set cache.maxBytes explicitly' --set resources.limits.memory=1.5Gi

log "helm package (Helm 4 and Helm 3), and the packages rendered"
PACKAGE_DIR="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/chart"
mkdir -p "$PACKAGE_DIR" "${OUT}/package3"
chart_version="$(sed -n 's/^version: //p' "$CHART/Chart.yaml")"
"$HELM" package "$CHART" --destination "$PACKAGE_DIR" >/dev/null
"$HELM3" package "$CHART" --destination "${OUT}/package3" >/dev/null
package="${PACKAGE_DIR}/csi-provider-aws-${chart_version}.tgz"
[[ -f "$package" && -f "${OUT}/package3/csi-provider-aws-${chart_version}.tgz" ]] ||
  die "helm package did not write csi-provider-aws-${chart_version}.tgz"
if tar -tzf "$package" | grep -q '/ci/'; then die "the package holds ci/ test values"; fi
for helm in "$HELM" "$HELM3"; do
  "$helm" template csi-provider-aws "$package" --namespace kube-system | diff "${OUT}/default.yaml" - >&2 ||
    die "$(basename "$helm"): the packaged chart renders differently"
done
log "  ${package} ($(du -k "$package" | cut -f1) KiB)"

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
  'fleet.budgetHeadroomByApi.GetSecretValue=2' \
  'fleet.budgetHeadroomByApi.ListSecrets=1' \
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
