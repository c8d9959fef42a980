#!/usr/bin/env bash
# The `image` step of scripts/test.sh: the container image, built and run.
#
#   scripts/check-image.sh
#
# 1. A Docker engine: the one that answers, else a private dockerd started here and stopped at
#    exit by its pid (scripts/docker-engine.sh; `apt-get install docker.io` when missing).
# 2. scripts/build-image.sh: the shared static release build, `docker build`, and `--version`
#    in the image with `--network none`.
# 3. The provider in a container as the chart runs it (read-only root filesystem, every
#    capability dropped, no new privileges), the socket directory and <kubelet>/pods
#    bind-mounted at their host paths, `--local-credentials` against moto on 127.0.0.1
#    (`--network host`: the private engine has no bridge). From outside the container, through
#    the socket: `Version` (Python grpc, as driver v1.6 dials) and a `Mount` (the host's
#    `csi-provider-aws mount`, examples/secretproviderclass-demo.yaml); the files it wrote are
#    checked (contents, modes, the `..data` swap). Then `docker stop`: the socket is removed.
#
# Under CI=true a missing docker/dockerd fails the step; elsewhere it is skipped (exit 77).
# Environment: IMAGE (default csi-provider-aws:ci), KEEP_IMAGE_WORK=1 (keep the scratch dir).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/docker-engine.sh
source "${REPO_ROOT}/scripts/docker-engine.sh"
cd "$REPO_ROOT"

IMAGE="${IMAGE:-csi-provider-aws:ci}"
SPC="examples/secretproviderclass-demo.yaml"
REGION="us-west-2"
POD_UID="image-check-pod-uid"
CONTAINER="csi-provider-aws-check-$$"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/csi-image.XXXXXX")"
PROVIDERS="${WORK}/providers"
KUBELET="${WORK}/kubelet"
SOCKET="${PROVIDERS}/aws.sock"
TARGET="${KUBELET}/pods/${POD_UID}/volumes/kubernetes.io~csi/secrets/mount"
container_started=0

cleanup() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM
  if ((container_started)); then
    if ((rc != 0)); then
      warn "the provider container's last log lines:"
      docker logs --tail 40 "$CONTAINER" >&2 || true
    fi
    docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
  fi
  cleanup_processes
  if ((rc != 0)) && [[ -n "${MOTO_LOG:-}" && -f "$MOTO_LOG" ]]; then
    warn "moto log: ${MOTO_LOG}"
  fi
  stop_docker_engine
  if [[ "${KEEP_IMAGE_WORK:-0}" == 1 ]]; then
    log "kept ${WORK}"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

AWS_ENV=()
set_aws_env() {
  AWS_ENV=(
    AWS_ENDPOINT_URL="http://127.0.0.1:${MOTO_PORT}"
    AWS_REGION="${REGION}" AWS_DEFAULT_REGION="${REGION}"
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
    AWS_EC2_METADATA_DISABLED=true
  )
}

seed() {
  env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_CONFIG_FILE="${WORK}/none" AWS_SHARED_CREDENTIALS_FILE="${WORK}/none" \
    "${AWS_ENV[@]}" "$VENV_PYTHON" - <<'EOF'
import json
import boto3
boto3.client("secretsmanager").create_secret(
    Name="demo/db-creds", SecretString=json.dumps({"username": "app", "password": "image-s3cr3t"}))
boto3.client("ssm").put_parameter(Name="/demo/api-key", Value="image-api-key", Type="SecureString")
EOF
}

start_provider() {
  mkdir -p "$PROVIDERS" "${KUBELET}/pods" "$TARGET"
  chmod 0700 "$PROVIDERS"
  local env_args=() kv i
  for kv in "${AWS_ENV[@]}"; do env_args+=(-e "$kv"); done
  log "docker run ${IMAGE}: provider on ${SOCKET} (--network host, read-only, no capabilities)"
  docker run -d --name "$CONTAINER" --network host --user "$(id -u):$(id -g)" \
    --read-only --cap-drop ALL --security-opt no-new-privileges \
    -v "${PROVIDERS}:${PROVIDERS}" -v "${KUBELET}/pods:${KUBELET}/pods" \
    "${env_args[@]}" -e CSI_PROVIDER_AWS_METRICS_ADDR=127.0.0.1:0 -e NO_COLOR=1 \
    "$IMAGE" --provider-volume "$PROVIDERS" --kubelet-path "$KUBELET" --local-credentials \
    --log-level info >/dev/null
  container_started=1
  for ((i = 0; i < 300; i++)); do
    [[ -S "$SOCKET" ]] && return 0
    [[ "$(docker inspect -f '{{.State.Running}}' "$CONTAINER")" == true ]] ||
      die "the provider container exited before creating ${SOCKET}"
    sleep 0.1
  done
  die "no socket at ${SOCKET} after 30s"
}

# Version through the socket with Python grpc (stubs generated from proto/provider.proto),
# sending `localhost` as :authority the way driver v1.6 does.
call_version() {
  mkdir -p "${WORK}/py"
  "$VENV_PYTHON" -m grpc_tools.protoc -Iproto --python_out="${WORK}/py" \
    --grpc_python_out="${WORK}/py" proto/provider.proto
  PYTHONPATH="${WORK}/py" "$VENV_PYTHON" - "$SOCKET" "$VERSION" <<'EOF'
import sys
import grpc
import provider_pb2, provider_pb2_grpc
socket, version = sys.argv[1], sys.argv[2]
with grpc.insecure_channel("unix://" + socket,
                           options=[("grpc.default_authority", "localhost")]) as channel:
    stub = provider_pb2_grpc.CSIDriverProviderStub(channel)
    r = stub.Version(provider_pb2.VersionRequest(version="v1alpha1"), timeout=10)
print("Version: version=%s runtime_name=%s runtime_version=%s"
      % (r.version, r.runtime_name, r.runtime_version))
if r.version != "v1alpha1" or r.runtime_version != version or not r.runtime_name:
    sys.exit("unexpected Version response (want v1alpha1 and runtime version %s)" % version)
EOF
}

call_mount() {
  "$RELEASE_BIN" mount --socket "$SOCKET" --spc "$SPC" --target "$TARGET" \
    --namespace default --pod image-check --pod-uid "$POD_UID" --service-account default
}

expect_file() {
  local name="$1" want="$2" mode="$3" got got_mode
  [[ -f "${TARGET}/${name}" ]] || die "${name}: not written into ${TARGET}"
  got="$(cat "${TARGET}/${name}")"
  [[ "$got" == "$want" ]] || die "${name}: expected '${want}', got '${got}'"
  got_mode="$(stat -L -c %a "${TARGET}/${name}")"
  [[ "$got_mode" == "$mode" ]] || die "${name}: mode ${got_mode}, expected ${mode}"
  log "${name}: contents and mode ${mode} as expected"
}

check_files() {
  [[ -L "${TARGET}/..data" ]] || die "no ..data symlink in ${TARGET}"
  local data
  data="$(readlink "${TARGET}/..data")"
  [[ -d "${TARGET}/${data}" ]] || die "..data points at '${data}', not a directory in ${TARGET}"
  expect_file db-user app 644
  expect_file db-pass image-s3cr3t 400
  expect_file api-key image-api-key 644
  [[ "$(readlink "${TARGET}/db-pass")" == "..data/db-pass" ]] || die "db-pass is not a ..data link"
}

stop_provider() {
  docker stop -t 15 "$CONTAINER" >/dev/null
  local code
  code="$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")"
  [[ "$code" == 0 ]] || die "the provider exited ${code} on SIGTERM"
  [[ ! -e "$SOCKET" ]] || die "the provider left ${SOCKET} behind on SIGTERM"
  log "docker stop: the provider exited 0 and removed its socket"
}

main() {
  local start=$SECONDS phase
  log_section "Docker engine"
  ensure_docker_engine || return
  ensure_venv # MOTO_SERVER, VENV_PYTHON (boto3 seeds moto, grpcio calls Version)

  phase=$SECONDS
  scripts/build-image.sh "$IMAGE"
  build_release_binary # no-op: the build above made it; sets RELEASE_BIN for the mount client
  log "image built in $((SECONDS - phase))s: ${IMAGE}, $(docker image inspect -f '{{.Size}}' "$IMAGE") bytes"

  log_section "the provider in a container, called through the socket"
  phase=$SECONDS
  start_moto MOTO_PORT "${WORK}/moto.log"
  set_aws_env
  seed
  start_provider
  call_version
  call_mount
  check_files
  if docker logs "$CONTAINER" 2>&1 | grep -qw ERROR; then
    die "the provider logged an error (docker logs ${CONTAINER})"
  fi
  stop_provider
  log "container checks took $((SECONDS - phase))s; the image step $((SECONDS - start))s"
}

main "$@"
