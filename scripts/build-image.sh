#!/usr/bin/env bash
# Builds the container image (deploy/Dockerfile): the statically linked release binary of this
# machine's architecture (-C target-feature=+crt-static) and the CA certificates, FROM scratch.
#
#   scripts/build-image.sh [IMAGE]   # default ghcr.io/csi-provider-aws/csi-provider-aws:<version>
#   docker push IMAGE                # then install the chart with image.repository/image.tag
#
# The binary comes from build_release_binary (scripts/lib.sh): the one static release build
# every CI step shares (target/static; RELEASE_BIN=path reuses a prebuilt one). Without a Docker
# engine it still builds the binary, says where it is, and exits 0 (scripts/check-image.sh starts
# an engine of its own). After the build it runs `--version` in the image with `--network none`.
# Environment: CA_CERTIFICATES (default /etc/ssl/certs/ca-certificates.crt).
# A clean static release build takes ~15 minutes on 2 cores. The release workflow builds the
# multi-arch image from the same Dockerfile with `docker buildx` (.github/workflows/release.yml).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
IMAGE="${1:-ghcr.io/csi-provider-aws/csi-provider-aws:${VERSION}}"
CA_CERTIFICATES="${CA_CERTIFICATES:-/etc/ssl/certs/ca-certificates.crt}"

[[ -r "$CA_CERTIFICATES" ]] || die "no CA certificates at ${CA_CERTIFICATES} (Debian: apt-get install ca-certificates)"

# Docker's name for the architecture of an ELF binary (e_machine), the `TARGETARCH` the
# Dockerfile copies from: amd64 or arm64.
elf_arch() {
  python3 - "$1" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    head = f.read(20)
machine, = struct.unpack_from("<H", head, 18)
print({62: "amd64", 183: "arm64"}.get(machine, "unknown-%d" % machine))
PY
}

# A static binary has no program interpreter (PT_INTERP): nothing to load from a scratch image.
is_static() {
  python3 - "$1" <<'PY'
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
}

log_section "static release binary"
build_release_binary
BIN="$RELEASE_BIN"
is_static "$BIN" ||
  die "${BIN} is dynamically linked (it has a PT_INTERP header); it would not start FROM scratch"
ARCH="$(elf_arch "$BIN")"
log "static: ${BIN} (linux/${ARCH}, $(stat -c %s "$BIN") bytes) has no program interpreter"

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  log "no Docker engine here: skipping docker build (the static binary is ${BIN})"
  log "elsewhere: scripts/build-image.sh ${IMAGE} && docker push ${IMAGE}"
  exit 0
fi

# The context the Dockerfile expects: bin/<arch>/csi-provider-aws (the release workflow puts
# both architectures there for buildx) and ca-certificates.crt.
context="$(mktemp -d "${TMPDIR:-/tmp}/image-context.XXXXXX")"
trap 'rm -rf "$context"' EXIT
mkdir -p "${context}/bin/${ARCH}"
cp deploy/Dockerfile "$context/Dockerfile"
cp "$BIN" "${context}/bin/${ARCH}/csi-provider-aws"
cp "$CA_CERTIFICATES" "$context/ca-certificates.crt"

log_section "docker build ${IMAGE} (linux/${ARCH})"
start=$SECONDS
# TARGETARCH is set by BuildKit on its own; the classic builder needs it passed.
docker build --build-arg "VERSION=${VERSION}" --build-arg "TARGETARCH=${ARCH}" -t "$IMAGE" "$context"
log "docker build took $((SECONDS - start))s"

got="$(docker run --rm --network none "$IMAGE" --version)"
log "docker run --network none ${IMAGE} --version: ${got}"
[[ "$got" == *"$VERSION"* ]] || die "--version printed '${got}', expected version ${VERSION}"
log "built ${IMAGE}: $(docker image inspect -f '{{.Size}}' "$IMAGE") bytes"
log "push it: docker push ${IMAGE}; then helm install ... --set image.repository=${IMAGE%:*} --set image.tag=${IMAGE##*:}"
