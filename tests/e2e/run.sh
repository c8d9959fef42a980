#!/usr/bin/env bash
# End-to-end suite on a kind cluster: the real Secrets Store CSI driver, our chart and image, moto
# as AWS inside the cluster, pods that mount. One command on a machine with Docker and kind:
#
#   tests/e2e/run.sh
#
# It creates a kind cluster, builds our image (scripts/build-image.sh) and loads it into kind,
# installs the driver (its chart, rotationPollInterval=30s, syncSecret.enabled=true,
# enableSecretRotation=true, tokenRequests for sts.amazonaws.com and pods.eks.amazonaws.com),
# starts moto (motoserver/moto) as the AWS endpoint and seeds it, installs our chart twice
# (provider-writes as `aws`, driver-writes as `aws-dw`; cache TTL 30 s; every service at moto;
# identity by IRSA against moto's STS), then runs the assertions in tests/e2e/e2e.bats: files and
# contents, jmesPath files, modes, rotation within 120 s, sync to a Secret, driver-writes mode, a
# bad SecretProviderClass as a pod event, and uninstall leaving nothing behind.
#
# Where Docker (with a running engine), kind or kubectl is missing it prints why and exits 77,
# which scripts/test.sh reports as SKIP, under CI=true too: kind needs a node image from a
# registry, which some CI machines cannot reach. Hosted CI sets E2E_REQUIRED=1, and then a missing
# tool fails instead.
#
# Environment:
#   E2E_CLUSTER           kind cluster name (default csi-provider-aws-e2e)
#   KIND_NODE_IMAGE       node image (default kindest/node:v1.33.1)
#   DRIVER_CHART_VERSION  secrets-store-csi-driver chart version (default 1.6.0; 1.5.4 for v1.5)
#   E2E_IMAGE             our image name (default csi-provider-aws:e2e; the values expect it)
#   SKIP_IMAGE_BUILD=1    use an E2E_IMAGE already in the local Docker engine
#   KEEP_CLUSTER=1        leave the cluster running afterwards (it is reused on the next run)
#   E2E_REQUIRED=1        fail (exit 1) instead of skipping when Docker, kind or kubectl is missing
#   E2E_SKIP=REASON       skip (exit 77) saying REASON (a CI job whose suite runs in other jobs)
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "${E2E_DIR}/../../scripts/lib.sh"
# shellcheck source=scripts/tools.sh
source "${REPO_ROOT}/scripts/tools.sh"
cd "$REPO_ROOT"

skip() {
  if [[ "${E2E_REQUIRED:-0}" == 1 ]]; then
    die "kind e2e suite cannot run (E2E_REQUIRED=1): $*"
  fi
  printf 'SKIP: kind e2e suite not run: %s\n' "$*"
  exit "$SKIP_CODE"
}

[[ -z "${E2E_SKIP:-}" ]] || skip "$E2E_SKIP"

command -v docker >/dev/null 2>&1 || skip "docker is not installed (needs Docker and kind)"
docker info >/dev/null 2>&1 || skip "no Docker engine answers (docker info failed)"
command -v kind >/dev/null 2>&1 || skip "kind is not installed (https://kind.sigs.k8s.io)"
command -v kubectl >/dev/null 2>&1 || skip "kubectl is not installed"

export E2E_CLUSTER="${E2E_CLUSTER:-csi-provider-aws-e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.33.1}"
DRIVER_CHART_VERSION="${DRIVER_CHART_VERSION:-1.6.0}"
DRIVER_CHART_REPO=https://kubernetes-sigs.github.io/secrets-store-csi-driver/charts
E2E_IMAGE="${E2E_IMAGE:-csi-provider-aws:e2e}"

if command -v helm >/dev/null 2>&1; then
  HELM="$(command -v helm)"
else
  ensure_helm || skip "helm could not be installed"
fi
export HELM
ensure_apt_tool bats || skip "bats is not installed (apt-get install bats)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/e2e.XXXXXX")"
export KUBECONFIG="${WORK}/kubeconfig"
export E2E_DIR WORK

created=0
finish() {
  local rc=$?
  if ((rc != 0)); then
    log_section "diagnostics"
    kubectl get pods -A -o wide >&2 || true
    kubectl -n e2e get events --sort-by=.lastTimestamp >&2 || true
    kubectl -n kube-system logs -l app.kubernetes.io/name=csi-provider-aws --tail=50 --prefix >&2 || true
    kubectl -n kube-system logs -l app=secrets-store-csi-driver -c secrets-store --tail=50 --prefix >&2 || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" == 1 ]]; then
    log "keeping cluster ${E2E_CLUSTER} (kind delete cluster --name ${E2E_CLUSTER})"
  elif ((created)); then
    kind delete cluster --name "$E2E_CLUSTER" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap finish EXIT

log_section "kind cluster ${E2E_CLUSTER}"
if kind get clusters 2>/dev/null | grep -qx "$E2E_CLUSTER"; then
  log "reusing the existing cluster"
else
  kind create cluster --name "$E2E_CLUSTER" --image "$KIND_NODE_IMAGE" --wait 180s
  created=1
fi
kind get kubeconfig --name "$E2E_CLUSTER" >"$KUBECONFIG"

log_section "image ${E2E_IMAGE}"
if [[ "${SKIP_IMAGE_BUILD:-0}" != 1 ]]; then
  scripts/build-image.sh "$E2E_IMAGE"
fi
kind load docker-image "$E2E_IMAGE" --name "$E2E_CLUSTER"

log_section "Secrets Store CSI driver ${DRIVER_CHART_VERSION}"
"$HELM" upgrade --install csi-secrets-store secrets-store-csi-driver --repo "$DRIVER_CHART_REPO" \
  --version "$DRIVER_CHART_VERSION" --namespace kube-system -f "${E2E_DIR}/driver-values.yaml" \
  --wait --timeout 5m

log_section "moto (AWS endpoint)"
kubectl apply -f "${E2E_DIR}/manifests/moto.yaml"
kubectl -n moto rollout status deploy/moto --timeout=180s
kubectl -n moto exec -i deploy/moto -- python - seed <"${E2E_DIR}/seed.py"

log_section "csi-provider-aws (provider writes: aws; driver writes: aws-dw)"
"$HELM" upgrade --install csi-provider-aws charts/csi-provider-aws --namespace kube-system \
  -f "${E2E_DIR}/provider-values.yaml" --wait --timeout 3m
"$HELM" upgrade --install csi-provider-aws-dw charts/csi-provider-aws --namespace kube-system \
  -f "${E2E_DIR}/provider-values.yaml" --set providerName=aws-dw --set driverWritesSecrets=true \
  --wait --timeout 3m

log_section "workloads"
kubectl apply -f "${E2E_DIR}/manifests/app.yaml" -f "${E2E_DIR}/manifests/bad.yaml"

log_section "assertions (tests/e2e/e2e.bats)"
bats "${E2E_DIR}/e2e.bats"
