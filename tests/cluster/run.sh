#!/usr/bin/env bash
# The cluster test (tests/cluster/README.md): csi-provider-aws in a real control plane with the
# real Secrets Store CSI driver binaries, as plain processes on this machine.
#
#   tests/cluster/run.sh          (scripts/test.sh cluster runs it)
#   tests/cluster/run.sh pods     (scripts/test.sh cluster-pods runs it: not a CI step)
#
# Builds what the cache lacks (kube-apiserver from the k8s.io/kubernetes module through
# tests/cluster/k8s; the driver v1.6.x and v1.5.x binaries from their modules with
# monis.app/mlog replaced by tests/cluster/mlog-stub), installs etcd (Debian etcd-server) and
# helm (.tools/) when missing, builds the provider (debug), then runs `go test` in tests/cluster,
# which starts everything, installs the driver's manifests and our chart, and runs the scenarios
# for both driver versions in both write modes.
#
# The pods mode adds a real node: kubelet (built from tests/cluster/kubelet-k8s, v1.35, the last
# release that runs with containerd 1.x) and Debian's containerd, runc and CNI plugins (installed
# when missing), our image (scripts/build-image.sh, in a private Docker engine) with a pause image
# and a busybox-static app image (FROM scratch, built here) imported into containerd, and
# kube-controller-manager and kube-scheduler (tests/cluster/controllers-k8s). Our chart's
# DaemonSet runs as a real pod, app pods mount SecretProviderClasses (TestPods). Instead of the
# debug provider it needs the static release binary (RELEASE_BIN, else build_release_binary).
#
# The test binary runs as root (the driver mounts tmpfs): directly when we are root, else through
# password-less sudo (hosted CI runners); everything is built as the calling user. Outside CI a
# missing tool (or no way to be root) skips with exit 77; under CI=true it fails.
#
# Environment:
#   CLUSTER_CACHE   build cache (default ${XDG_CACHE_HOME:-~/.cache}/csi-provider-aws/cluster);
#                   each build lives in a directory named by its versions, so a change of version
#                   builds anew and a second run reuses everything (old entries: delete by hand)
#   CLUSTER_KEEP=1  keep the test's directory (process logs) after a passing run too (a failed
#                   run always keeps it)
#   GO_TEST_ARGS    extra test binary arguments, e.g. "-test.run TestCluster/driver-v1.6/provider-writes"
set -euo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "${CLUSTER_DIR}/../../scripts/lib.sh"
# shellcheck source=scripts/tools.sh
source "${REPO_ROOT}/scripts/tools.sh"
cd "$REPO_ROOT"

MODE="${1:-cluster}"
case "$MODE" in
  cluster | pods) ;;
  *) die "usage: tests/cluster/run.sh [pods]" ;;
esac
KUBERNETES_VERSION=v1.37.2
KUBELET_VERSION=v1.35.4 # tests/cluster/kubelet-k8s/go.mod
DRIVER_VERSIONS=(v1.6.1 v1.5.6)
CACHE="${CLUSTER_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/csi-provider-aws/cluster}"

if ! can_be_root; then
  is_ci && die "the cluster test must run as root or with password-less sudo (the driver mounts tmpfs)"
  warn "neither root nor password-less sudo: the driver cannot mount tmpfs; skipping"
  exit "$SKIP_CODE"
fi
need_tool go "Go toolchain, to build kube-apiserver, the driver and the test" || exit
need_tool cargo "Rust toolchain" || exit
if ! command -v etcd >/dev/null 2>&1; then
  apt_install etcd-server || true
fi
need_tool etcd "Debian package etcd-server" || exit
if [[ "$MODE" == pods ]]; then
  # shellcheck source=scripts/docker-engine.sh
  source "${REPO_ROOT}/scripts/docker-engine.sh"
  if ! command -v containerd >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
    apt_install containerd runc || true
  fi
  [[ -x /usr/lib/cni/bridge ]] || apt_install containernetworking-plugins || true
  [[ -x /bin/busybox ]] || apt_install busybox-static || true
  need_tool containerd "Debian package containerd" || exit
  need_tool ctr "Debian package containerd" || exit
  need_tool runc "Debian package runc" || exit
  need_tool ip "Debian package iproute2" || exit
  need_tool "CNI plugins" "Debian package containernetworking-plugins" test -x /usr/lib/cni/bridge || exit
  need_tool busybox "Debian package busybox-static" test -x /bin/busybox || exit
fi
ensure_venv
ensure_helm || exit

GO_VERSION="$(go env GOVERSION)"
mkdir -p "$CACHE"
exec 9>"${CACHE}/.lock"
flock 9 # one builder at a time (two runs started at once wait here)

# cache_key PREFIX FILE...: PREFIX-<go version>-<first 12 hex of the files' hash>.
cache_key() {
  local prefix="$1"
  shift
  printf '%s-%s-%s' "$prefix" "$GO_VERSION" "$(cat "$@" | sha256sum | cut -c1-12)"
}

# kube-apiserver from tests/cluster/k8s (its go.mod pins the version and replaces the staging
# modules with their published releases).
build_apiserver() {
  local key dir start minor
  key="$(cache_key "kube-apiserver-${KUBERNETES_VERSION}" tests/cluster/k8s/go.mod tests/cluster/k8s/go.sum)"
  dir="${CACHE}/${key}"
  KUBE_APISERVER="${dir}/kube-apiserver"
  [[ -x "$KUBE_APISERVER" ]] && return 0
  log "building kube-apiserver ${KUBERNETES_VERSION} into ${dir} (cold: ~10 CPU-minutes)"
  start=$SECONDS
  mkdir -p "$dir"
  minor="${KUBERNETES_VERSION#v1.}"
  minor="${minor%%.*}"
  (cd tests/cluster/k8s && nice -n 5 go build -o "${KUBE_APISERVER}.tmp" -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION} \
    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}" \
    k8s.io/kubernetes/cmd/kube-apiserver)
  mv "${KUBE_APISERVER}.tmp" "$KUBE_APISERVER"
  log "kube-apiserver built in $((SECONDS - start))s"
}

# The driver VERSION from its module (a writable copy, monis.app/mlog replaced by our stub),
# and its manifest_staging/deploy. Prints the build directory.
build_driver() {
  local version="$1" key dir src start
  key="$(cache_key "driver-${version}" tests/cluster/mlog-stub/go.mod tests/cluster/mlog-stub/mlog.go)"
  dir="${CACHE}/${key}"
  if [[ -x "${dir}/secrets-store-csi-driver" && -d "${dir}/deploy" ]]; then
    printf '%s\n' "$dir"
    return 0
  fi
  log "building secrets-store-csi-driver ${version} into ${dir} (cold: ~2 CPU-minutes)"
  start=$SECONDS
  src="$(go mod download -json "sigs.k8s.io/secrets-store-csi-driver@${version}" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -n "$src" && -d "$src" ]] || die "go mod download sigs.k8s.io/secrets-store-csi-driver@${version} failed"
  rm -rf "${dir}/src"
  mkdir -p "$dir"
  cp -r "$src" "${dir}/src"
  chmod -R u+w "${dir}/src"
  (
    cd "${dir}/src"
    go mod edit -replace "monis.app/mlog=${CLUSTER_DIR}/mlog-stub"
    GOFLAGS=-mod=mod nice -n 5 go build -o "${dir}/secrets-store-csi-driver.tmp" \
      -ldflags "-X sigs.k8s.io/secrets-store-csi-driver/pkg/version.BuildVersion=${version}" \
      ./cmd/secrets-store-csi-driver
  ) >&2
  rm -rf "${dir}/deploy"
  cp -r "${dir}/src/manifest_staging/deploy" "${dir}/deploy"
  rm -rf "${dir}/src" # the module cache keeps the source
  mv "${dir}/secrets-store-csi-driver.tmp" "${dir}/secrets-store-csi-driver"
  log "driver ${version} built in $((SECONDS - start))s"
  printf '%s\n' "$dir"
}

# build_k8s_cmd MODULE VERSION CMD: k8s.io/kubernetes/cmd/CMD from tests/cluster/MODULE (a
# wrapper module like k8s/) into the cache, once; prints the binary's path. The pods mode's
# kubelet (kubelet-k8s/, v1.35) and controllers (controllers-k8s/, the API server's version).
build_k8s_cmd() {
  local module="$1" version="$2" cmd="$3" key dir bin start minor
  key="$(cache_key "${cmd}-${version}" "tests/cluster/${module}/go.mod" "tests/cluster/${module}/go.sum")"
  dir="${CACHE}/${key}"
  bin="${dir}/${cmd}"
  if [[ ! -x "$bin" ]]; then
    log "building ${cmd} ${version} into ${dir}"
    start=$SECONDS
    mkdir -p "$dir"
    minor="${version#v1.}"
    minor="${minor%%.*}"
    (cd "tests/cluster/${module}" && nice -n 5 go build -o "${bin}.tmp" -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=${version} \
      -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}" \
      "k8s.io/kubernetes/cmd/${cmd}") >&2
    mv "${bin}.tmp" "$bin"
    log "${cmd} built in $((SECONDS - start))s"
  fi
  printf '%s\n' "$bin"
}

build_apiserver
if [[ "$MODE" == pods ]]; then
  KUBELET="$(build_k8s_cmd kubelet-k8s "$KUBELET_VERSION" kubelet)"
  KUBE_CONTROLLER_MANAGER="$(build_k8s_cmd controllers-k8s "$KUBERNETES_VERSION" kube-controller-manager)"
  KUBE_SCHEDULER="$(build_k8s_cmd controllers-k8s "$KUBERNETES_VERSION" kube-scheduler)"
fi
DRIVER_V16_DIR="$(build_driver "${DRIVER_VERSIONS[0]}")"
DRIVER_V15_DIR="$(build_driver "${DRIVER_VERSIONS[1]}")"
flock -u 9

if [[ "$MODE" == cluster ]]; then
  log "provider: cargo build --bin csi-provider-aws"
  cargo build --bin csi-provider-aws
fi

# The test's own directory: whatever happens to the test (a timeout kills it without its
# cleanup; its children die with it), every mount under it is undone and it is removed on exit.
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/csi-provider-aws-cluster.XXXXXX")"
cleanup() {
  local rc=$? point bridge
  if [[ "$MODE" == pods ]]; then
    stop_docker_engine
    # The test deletes its bridge; if it was killed before, the link is named in node/bridge.
    for bridge in "$RUN_DIR"/cluster-test-*/node/bridge; do
      [[ -f "$bridge" ]] || continue
      bridge="$(cat "$bridge")"
      if ip link show "$bridge" >/dev/null 2>&1; then
        warn "deleting the bridge ${bridge} the test left"
        as_root ip link del "$bridge" || warn "could not delete ${bridge}"
      fi
    done
  fi
  # Deepest first (mountinfo lists parents before children).
  while read -r point; do
    as_root umount -l "$point" 2>/dev/null || warn "could not unmount ${point}"
  done < <(awk -v d="$RUN_DIR" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | tac)
  if [[ "${CLUSTER_KEEP:-0}" == 1 || $rc != 0 ]]; then
    log "kept ${RUN_DIR} (process logs under cluster-test-*/logs)"
  else
    as_root rm -rf "$RUN_DIR"
  fi
}
trap cleanup EXIT

log "go test -c in tests/cluster"
(cd tests/cluster && go test -c -o "${RUN_DIR}/cluster.test" .)

# The pods mode's images, as docker-save tarballs for `ctr images import`: ours from
# scripts/build-image.sh, a pause image (tests/cluster/pause) and busybox-static, FROM scratch.
IMAGES_DIR="${RUN_DIR}/images"
build_images() {
  local ctx="${RUN_DIR}/image-context" start=$SECONDS
  mkdir -p "$IMAGES_DIR" "${ctx}/pause" "${ctx}/app"
  ensure_docker_engine || return
  scripts/build-image.sh csi-provider-aws:cluster-pods
  (cd tests/cluster && CGO_ENABLED=0 go build -o "${ctx}/pause/pause" ./pause)
  printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"${ctx}/pause/Dockerfile"
  cp /bin/busybox "${ctx}/app/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n' >"${ctx}/app/Dockerfile"
  docker build -q -t cluster-pause:local "${ctx}/pause" >/dev/null
  docker build -q -t cluster-app:local "${ctx}/app" >/dev/null
  docker save -o "${IMAGES_DIR}/provider.tar" csi-provider-aws:cluster-pods
  docker save -o "${IMAGES_DIR}/pause.tar" cluster-pause:local
  docker save -o "${IMAGES_DIR}/app.tar" cluster-app:local
  stop_docker_engine
  log "images built and saved in $((SECONDS - start))s"
}
if [[ "$MODE" == pods ]]; then
  build_images
  TEST_MODE_ENV=(CLUSTER_PODS=1 KUBELET_BIN="$KUBELET" KUBE_CONTROLLER_MANAGER="$KUBE_CONTROLLER_MANAGER"
    KUBE_SCHEDULER="$KUBE_SCHEDULER" CONTAINERD_BIN="$(command -v containerd)"
    CTR_BIN="$(command -v ctr)" CNI_BIN_DIR=/usr/lib/cni IMAGES_DIR="$IMAGES_DIR")
  TEST_RUN=(-test.run 'TestPods' -test.timeout=25m)
else
  TEST_MODE_ENV=(PROVIDER_BIN="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/debug/csi-provider-aws")
  TEST_RUN=(-test.timeout=15m)
fi

log "cluster test, ${MODE} mode (kube-apiserver ${KUBERNETES_VERSION}, driver ${DRIVER_VERSIONS[*]}) as root"
start=$SECONDS
# sudo resets the environment: everything the test reads is passed explicitly.
# shellcheck disable=SC2086 # GO_TEST_ARGS is a list of arguments
(cd tests/cluster && as_root env PATH="$PATH" HOME="$HOME" TMPDIR="$RUN_DIR" CLUSTER_KEEP="${CLUSTER_KEEP:-}" \
  ETCD_BIN="$(command -v etcd)" KUBE_APISERVER="$KUBE_APISERVER" HELM="$HELM" \
  CHART="${REPO_ROOT}/charts/csi-provider-aws" \
  "${TEST_MODE_ENV[@]}" \
  MOTO_SERVER="$MOTO_SERVER" VENV_PYTHON="$VENV_PYTHON" \
  DRIVER_V16_BIN="${DRIVER_V16_DIR}/secrets-store-csi-driver" DRIVER_V16_DEPLOY="${DRIVER_V16_DIR}/deploy" \
  DRIVER_V15_BIN="${DRIVER_V15_DIR}/secrets-store-csi-driver" DRIVER_V15_DEPLOY="${DRIVER_V15_DIR}/deploy" \
  nice -n 5 "${RUN_DIR}/cluster.test" -test.count=1 "${TEST_RUN[@]}" -test.v ${GO_TEST_ARGS:-})
log "cluster test passed in $((SECONDS - start))s"
