#!/usr/bin/env bash
# Proves that a full value cache keeps the provider under the chart's memory limit: the real
# binary with the chart's default cache bound (half of resources.limits.memory), moto as AWS,
# and enough distinct 64 KiB secrets to overflow the cache. Mounts them all (twice, so evicted
# values are read again), then reads VmRSS and VmHWM (peak) from /proc/<pid>/status.
#
#   scripts/cache-rss.sh                  # limit 64Mi (the chart's default), 64 KiB values
#   LIMIT=128Mi scripts/cache-rss.sh      # another memory limit (cache: half of it)
#   PROVIDER_BIN=target/release/csi-provider-aws scripts/cache-rss.sh
#
# Not part of scripts/test.sh (~1-2 minutes, most of it seeding moto). Prints the figures; exits
# non-zero if the peak reaches the limit.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

LIMIT="${LIMIT:-64Mi}"
VALUE_BYTES="${VALUE_BYTES:-65536}"
PER_MOUNT=16
REGION=us-west-2

case "$LIMIT" in
  *Mi) limit_bytes=$((${LIMIT%Mi} << 20)) ;;
  *Gi) limit_bytes=$((${LIMIT%Gi} << 30)) ;;
  *) die "LIMIT: use NMi or NGi" ;;
esac
cache_bytes=$((limit_bytes / 2))
# Half again as many values as the cache holds: it must evict.
secrets=$((cache_bytes * 3 / 2 / VALUE_BYTES / PER_MOUNT * PER_MOUNT))
mounts=$((secrets / PER_MOUNT))

TMP="$(mktemp -d "${TMPDIR:-/tmp}/cache-rss.XXXXXX")"
PROVIDERS="${TMP}/providers"
KUBELET="${TMP}/kubelet"
SOCKET="${PROVIDERS}/aws.sock"
cleanup() {
  local rc=$?
  cleanup_processes
  ((rc == 0)) || tail -n 20 "${TMP}/provider.log" >&2 || true
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT

ensure_venv
bin="${PROVIDER_BIN:-}"
if [[ -z "$bin" ]]; then
  cargo build --quiet --bin csi-provider-aws
  bin="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/debug/csi-provider-aws"
fi

start_moto MOTO_PORT "${TMP}/moto.log"
aws_env=(
  env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_DEFAULT_PROFILE
  AWS_ENDPOINT_URL="http://127.0.0.1:${MOTO_PORT}" AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION"
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
  # Files that do not exist, not /dev/null: on some machines /dev/null is a regular file
  # that other commands have written into, and botocore then fails to parse it.
  AWS_CONFIG_FILE="${TMP}/aws-config-absent" AWS_SHARED_CREDENTIALS_FILE="${TMP}/aws-credentials-absent"
)

log "seeding ${secrets} secrets of ${VALUE_BYTES} bytes; ${mounts} SecretProviderClasses of ${PER_MOUNT}"
"${aws_env[@]}" "$VENV_PYTHON" - "$secrets" "$VALUE_BYTES" "$PER_MOUNT" "$TMP" <<'EOF'
import os, random, string, sys
import boto3
count, size, per, tmp = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sm = boto3.client("secretsmanager")
alphabet = (string.ascii_letters + string.digits).encode()
for i in range(count):
    # Distinct, incompressible-looking text values.
    value = bytes(random.choice(alphabet) for _ in range(64)) * (size // 64)
    sm.create_secret(Name=f"rss/{i:05d}", SecretString=value.decode())
for m in range(count // per):
    objects = "".join(f"      - objectName: rss/{i:05d}\n        objectType: secretsmanager\n"
                      for i in range(m * per, (m + 1) * per))
    with open(os.path.join(tmp, f"spc-{m}.yaml"), "w") as f:
        f.write("apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\n"
                f"metadata:\n  name: rss-{m}\nspec:\n  provider: aws\n  parameters:\n"
                f"    region: us-west-2\n    objects: |\n{objects}")
EOF

mkdir -p "$PROVIDERS" "${KUBELET}/pods"
"${aws_env[@]}" NO_COLOR=1 "$bin" --provider-volume "$PROVIDERS" --kubelet-path "$KUBELET" \
  --local-credentials --cache-ttl 10m --cache-max-bytes "$cache_bytes" --metrics-addr 127.0.0.1:0 \
  --log-level info >"${TMP}/provider.log" 2>&1 &
pid=$!
track_pid "$pid"
for ((i = 0; i < 300; i++)); do
  [[ -S "$SOCKET" ]] && break
  kill -0 "$pid" 2>/dev/null || die "the provider exited"
  sleep 0.1
done
[[ -S "$SOCKET" ]] || die "no socket"
admin="$(grep -o 'addr=[0-9.:]*' "${TMP}/provider.log" | head -n 1 | cut -d= -f2)"

status() { # status FIELD: kB from /proc/<pid>/status
  awk -v f="$1:" '$1 == f { print $2 }' "/proc/${pid}/status"
}
metric() { # metric NAME: the value of one unlabelled csi_provider_aws_ metric
  curl -fsS "http://${admin}/metrics" | awk -v m="csi_provider_aws_$1" '$1 == m { print $2 }'
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

idle_kb="$(status VmRSS)"
for round in 1 2; do
  for ((m = 0; m < mounts; m++)); do
    uid="pod-${m}"
    target="${KUBELET}/pods/${uid}/volumes/kubernetes.io~csi/secrets/mount"
    mkdir -p "$target"
    "$bin" mount --socket "$SOCKET" --spc "${TMP}/spc-${m}.yaml" --target "$target" \
      --namespace default --pod "$uid" --pod-uid "$uid" --service-account default >/dev/null
  done
  log "round ${round}: VmRSS $(mib "$(status VmRSS)") MiB, peak VmHWM $(mib "$(status VmHWM)") MiB," \
    "cache entries $(metric cache_entries), evictions $(metric cache_evictions_total)"
done

rss_kb="$(status VmRSS)" hwm_kb="$(status VmHWM)"
printf '\n| memory limit | cache bound | values | distinct values mounted | cache entries | idle RSS | RSS after | peak (VmHWM) | headroom |\n' >&2
printf '|---|---|---|---:|---:|---:|---:|---:|---:|\n' >&2
printf '| %s | %s MiB | %s B | %s (%s MiB) | %s | %s MiB | %s MiB | %s MiB | %s MiB |\n' "$LIMIT" "$((cache_bytes >> 20))" \
  "$VALUE_BYTES" "$secrets" "$((secrets * VALUE_BYTES >> 20))" "$(metric cache_entries)" "$(mib "$idle_kb")" \
  "$(mib "$rss_kb")" "$(mib "$hwm_kb")" "$(mib $((limit_bytes / 1024 - hwm_kb)))" >&2
((hwm_kb * 1024 < limit_bytes)) || die "peak RSS $(mib "$hwm_kb") MiB reached the ${LIMIT} limit"
log "a full cache stays under the ${LIMIT} limit"
