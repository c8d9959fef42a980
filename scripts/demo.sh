#!/usr/bin/env bash
# The README quick start, end to end on this machine, no cluster and no AWS account:
# moto plays AWS, the provider serves on a unix socket, and `csi-provider-aws mount` calls it as
# the Secrets Store CSI driver would. Then the secret is rotated and mounted again.
#
#   scripts/demo.sh                 debug build (fast to build)
#   DEMO_RELEASE=1 scripts/demo.sh  release build
#   DEMO_KEEP=1 scripts/demo.sh     keep the scratch directory (logs, mounted files)
#
# Every value here is fake, which is why the demo prints file contents; the `mount` subcommand
# itself never does.
set -euo pipefail
shopt -s nullglob

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

SPC="examples/secretproviderclass-demo.yaml"
REGION="us-west-2"
POD_UID="demo-pod-uid"
# The provider's --cache-ttl (default 60 s), short so the rotation shows within seconds.
CACHE_TTL=3
MOTO_PORT=""

TMP="$(mktemp -d "${TMPDIR:-/tmp}/csi-demo.XXXXXX")"
PROVIDERS="${TMP}/providers"
KUBELET="${TMP}/kubelet"
SOCKET="${PROVIDERS}/aws.sock"
TARGET="${KUBELET}/pods/${POD_UID}/volumes/kubernetes.io~csi/secrets/mount"

cleanup() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM # finish cleaning up (bounded: a few seconds at most) even on a second Ctrl-C
  cleanup_processes
  if ((rc != 0)); then
    warn "demo failed (exit ${rc}); last lines of the logs:"
    for f in "${TMP}/provider.log" "${TMP}/moto.log"; do
      [[ -f "$f" ]] || continue
      printf -- '--- %s\n' "$f" >&2
      tail -n 40 "$f" >&2 || true
    done
  fi
  if [[ "${DEMO_KEEP:-0}" == 1 ]]; then
    log "kept ${TMP}"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The environment AWS tools see: moto, the demo region, dummy credentials, nothing from ~/.aws.
# A command prefix (not a function) so that `$!` of a backgrounded command is the command itself.
set_aws_env() {
  AWS_ENV=(
    env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_DEFAULT_PROFILE
    AWS_ENDPOINT_URL="http://127.0.0.1:${MOTO_PORT}"
    AWS_REGION="${REGION}" AWS_DEFAULT_REGION="${REGION}"
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
    AWS_EC2_METADATA_DISABLED=true
    # Files that do not exist, not /dev/null: on some machines /dev/null is a regular file
    # that other commands have written into, and botocore then fails to parse it.
    AWS_CONFIG_FILE="${TMP}/aws-config-absent" AWS_SHARED_CREDENTIALS_FILE="${TMP}/aws-credentials-absent"
  )
}

build() {
  local profile=debug
  local args=(build --bin csi-provider-aws)
  if [[ "${DEMO_RELEASE:-0}" == 1 ]]; then
    profile=release
    args+=(--release)
  fi
  log "cargo ${args[*]}"
  cargo "${args[@]}"
  BIN="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/${profile}/csi-provider-aws"
  [[ -x "$BIN" ]] || die "built binary not found at ${BIN}"
}

seed() {
  "${AWS_ENV[@]}" "$VENV_PYTHON" - "$@" <<'EOF'
import json, sys
import boto3
action = sys.argv[1]
sm = boto3.client("secretsmanager")
if action == "create":
    sm.create_secret(Name="demo/db-creds",
                     SecretString=json.dumps({"username": "app", "password": "s3cr3t-v1"}))
    boto3.client("ssm").put_parameter(Name="/demo/api-key", Value="demo-api-key-123",
                                      Type="SecureString")
    print("created secret demo/db-creds and SecureString parameter /demo/api-key")
elif action == "rotate":
    v = sm.put_secret_value(SecretId="demo/db-creds",
                            SecretString=json.dumps({"username": "app", "password": "s3cr3t-v2"}))
    print("put a new value of demo/db-creds, version", v["VersionId"])
EOF
}

start_provider() {
  log "starting the provider on ${SOCKET}"
  mkdir -p "$PROVIDERS" "${KUBELET}/pods"
  "${AWS_ENV[@]}" CSI_PROVIDER_AWS_METRICS_ADDR=127.0.0.1:0 NO_COLOR=1 \
    "$BIN" --provider-volume "$PROVIDERS" --kubelet-path "$KUBELET" \
    --local-credentials --cache-ttl "${CACHE_TTL}s" --log-level info >"${TMP}/provider.log" 2>&1 &
  local pid=$!
  track_pid "$pid"
  local i
  for ((i = 0; i < 300; i++)); do
    [[ -S "$SOCKET" ]] && return 0
    kill -0 "$pid" 2>/dev/null || die "the provider exited before creating ${SOCKET}"
    sleep 0.1
  done
  die "no socket at ${SOCKET} after 30s"
}

mount_once() {
  "$BIN" mount --socket "$SOCKET" --spc "$SPC" --target "$TARGET" \
    --namespace default --pod demo --pod-uid "$POD_UID" --service-account default
}

show_files() {
  ls -la "$TARGET"
  ls -l "${TARGET}/..data/"
  local f
  for f in "$TARGET"/*; do
    printf '%s: %s\n' "$(basename "$f")" "$(cat "$f")"
  done
}

expect_file() {
  local name="$1" want="$2" got
  got="$(cat "${TARGET}/${name}")"
  [[ "$got" == "$want" ]] || die "${name}: expected '${want}', got '${got}'"
}

main() {
  log_section "setup"
  ensure_venv
  build
  start_moto MOTO_PORT "${TMP}/moto.log"
  set_aws_env
  seed create
  start_provider
  mkdir -p "$TARGET"

  log_section "mount"
  mount_once
  show_files
  expect_file db-user app
  expect_file db-pass s3cr3t-v1
  local before after
  before="$(readlink "${TARGET}/..data")"

  log_section "rotate; mount again at once (served from the ${CACHE_TTL}s value cache)"
  seed rotate
  mount_once
  expect_file db-pass s3cr3t-v1
  [[ "$(readlink "${TARGET}/..data")" == "$before" ]] || die "an unchanged re-sync rewrote the files"
  log "unchanged, nothing written: a value is served from the cache for at most --cache-ttl"

  log_section "mount again after the cache TTL: the rotated value"
  sleep "$((CACHE_TTL + 1))"
  mount_once
  show_files
  expect_file db-pass s3cr3t-v2
  after="$(readlink "${TARGET}/..data")"
  printf '..data: %s -> %s\n' "$before" "$after"
  [[ "$before" != "$after" ]] || die "..data did not change after the rotation"

  log_section "done"
  log "the demo passed; cleaning up"
}

main "$@"
