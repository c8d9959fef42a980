#!/usr/bin/env bash
# Builds the container image (deploy/Dockerfile): a statically linked release binary
# (x86_64-unknown-linux-gnu, -C target-feature=+crt-static) and the CA certificates, FROM scratch.
#
#   scripts/build-image.sh [IMAGE]   # default ghcr.io/csi-provider-aws/csi-provider-aws:<version>
#   docker push IMAGE                # then install the chart with image.repository/image.tag
#
# Without a Docker engine it still builds the static binary, says where it is, and exits 0.
# Environment: IMAGE_TARGET_DIR (cargo target directory of the static build, default
# target/image, kept apart so it never waits on or invalidates the debug builds),
# CA_CERTIFICATES (default /etc/ssl/certs/ca-certificates.crt), SKIP_CARGO=1 (reuse the binary).
# A clean static release build takes ~15 minutes on 2 cores.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

TARGET=x86_64-unknown-linux-gnu
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
IMAGE="${1:-ghcr.io/csi-provider-aws/csi-provider-aws:${VERSION}}"
TARGET_DIR="${IMAGE_TARGET_DIR:-${REPO_ROOT}/target/image}"
CA_CERTIFICATES="${CA_CERTIFICATES:-/etc/ssl/certs/ca-certificates.crt}"
BIN="${TARGET_DIR}/${TARGET}/release/csi-provider-aws"

[[ -r "$CA_CERTIFICATES" ]] || die "no CA certificates at ${CA_CERTIFICATES} (Debian: apt-get install ca-certificates)"

if [[ "${SKIP_CARGO:-0}" != 1 ]]; then
  log_section "static release binary (${TARGET}, crt-static)"
  start=$SECONDS
  # --target keeps RUSTFLAGS off build scripts and proc macros, which cannot be static.
  RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$TARGET_DIR" \
    cargo build --release --target "$TARGET" --bin csi-provider-aws
  log "built in $((SECONDS - start))s"
fi
[[ -x "$BIN" ]] || die "no binary at ${BIN}"

# A static binary has no program interpreter (PT_INTERP): nothing to load from a scratch image.
if python3 - "$BIN" <<'PY'; then
import struct, sys
with open(sys.argv[1], "rb") as f:
    head = f.read(64)
    phoff, = struct.unpack_from("<Q", head, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    f.seek(phoff)
    table = f.read(phentsize * phnum)
types = [struct.unpack_from("<I", table, i * phentsize)[0] for i in range(phnum)]
sys.exit(1 if 3 in types else 0)  # 3 = PT_INTERP
PY
  log "static: ${BIN} ($(du -h "$BIN" | cut -f1)) has no program interpreter"
else
  die "${BIN} is dynamically linked (it has a PT_INTERP header); it would not start FROM scratch"
fi

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  log "no Docker engine here: skipping docker build (the static binary is ${BIN})"
  log "elsewhere: scripts/build-image.sh ${IMAGE} && docker push ${IMAGE}"
  exit 0
fi

context="$(mktemp -d "${TMPDIR:-/tmp}/image-context.XXXXXX")"
trap 'rm -rf "$context"' EXIT
cp deploy/Dockerfile "$context/Dockerfile"
cp "$BIN" "$context/csi-provider-aws"
cp "$CA_CERTIFICATES" "$context/ca-certificates.crt"

log_section "docker build ${IMAGE}"
docker build --build-arg "VERSION=${VERSION}" -t "$IMAGE" "$context"
docker run --rm "$IMAGE" --version
log "built ${IMAGE} ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
log "push it: docker push ${IMAGE}; then helm install ... --set image.repository=${IMAGE%:*} --set image.tag=${IMAGE##*:}"
