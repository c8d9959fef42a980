# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; do not execute it.
#
#   ensure_venv          create <repo>/.venv with the pinned Python tools (moto server, boto3,
#                        grpcio, grpcio-tools) when missing or outdated; exports MOTO_SERVER.
#   start_moto PORT_VAR  start a moto server on 127.0.0.1, a free port, wait until it answers;
#                        stores the port in PORT_VAR, the pid in MOTO_PID, the log in MOTO_LOG.
#   track_pid PID        kill PID in cleanup_processes (call that from your EXIT trap).
#   need_tool NAME HINT [CHECK...]  0 if NAME is on PATH (or the CHECK command succeeds);
#                        otherwise fail under CI=true, else return 77 (the "skipped" code
#                        scripts/test.sh understands).
#   apt_install PKG...   `apt-get install` (an `apt-get update` first if that fails) when apt-get
#                        exists and we are root or have password-less sudo; non-zero otherwise.
#   as_root CMD...       CMD as root: directly when root, else through `sudo -n` (hosted CI
#                        runners are not root); non-zero when neither is possible.
#   build_release_binary the static release binary (one build per CI run, shared by every step
#                        and script that needs it); exports RELEASE_BIN.
#   log / log_section / warn / die   logging to stderr.
#   ensure_dev_null      runs when this file is sourced: a /dev/null that is a regular file is
#                        replaced with the real character device (see below).

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${REPO_ROOT}/.venv"

# Pinned Python tools. Changing this list changes its hash, and ensure_venv reinstalls.
PY_REQUIREMENTS=(
  "moto[server]==5.2.5"
  "boto3==1.44.5"
  "grpcio==1.85.1"
  "grpcio-tools==1.85.1"
)

SKIP_CODE=77
CLEANUP_PIDS=()

# ---------------------------------------------------------------------------------------------
# Logging
if [[ -t 2 && -z "${NO_COLOR:-}" ]]; then
  _C_BOLD=$'\e[1m' _C_RED=$'\e[31m' _C_YELLOW=$'\e[33m' _C_BLUE=$'\e[34m' _C_OFF=$'\e[0m'
else
  _C_BOLD='' _C_RED='' _C_YELLOW='' _C_BLUE='' _C_OFF=''
fi

log() { printf '%s==>%s %s\n' "$_C_BLUE" "$_C_OFF" "$*" >&2; }
warn() { printf '%swarning:%s %s\n' "$_C_YELLOW" "$_C_OFF" "$*" >&2; }
die() {
  printf '%serror:%s %s\n' "$_C_RED" "$_C_OFF" "$*" >&2
  exit 1
}
log_section() {
  printf '\n%s===== %s =====%s\n' "$_C_BOLD" "$*" "$_C_OFF" >&2
}

is_ci() { [[ "${CI:-}" == "true" ]]; }

# need_tool NAME HINT [CHECK_CMD...]: is NAME available (on PATH, or CHECK_CMD succeeds)?
# Under CI a missing tool is an error; otherwise returns SKIP_CODE.
need_tool() {
  local name="$1" hint="${2:-}"
  shift 2 || shift $#
  if (($#)); then
    "$@" >/dev/null 2>&1 && return 0
  else
    command -v "$name" >/dev/null 2>&1 && return 0
  fi
  if is_ci; then
    die "required tool '${name}' not found${hint:+ (${hint})}"
  fi
  warn "'${name}' not found${hint:+ (${hint})}; skipping"
  return "$SKIP_CODE"
}

is_root() { [[ "$(id -u)" == 0 ]]; }

# True when as_root can run a command: we are root, or sudo works without a password.
can_be_root() {
  is_root || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

as_root() {
  if is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    warn "not root and no sudo: cannot run $1 as root"
    return 1
  fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 && can_be_root || return 1
  log "installing $* (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    { as_root apt-get update -qq >/dev/null 2>&1 &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; }
}

# ---------------------------------------------------------------------------------------------
# /dev/null
#
# Some sandboxed machines (CI's among them) start with /dev/null as a *regular file*. Every
# `>/dev/null` then writes into it, and every reader of /dev/null gets that text back: cargo's
# `rustc -` probe fails to compile it (and caches the failure in target/.rustc_info.json), and
# botocore fails to parse it as a config file. Put the real device back when we can (root, or
# password-less sudo); warn when we cannot.
ensure_dev_null() {
  [[ -c /dev/null ]] && return 0
  local fresh="/dev/.null.$$"
  if can_be_root && as_root mknod -m 666 "$fresh" c 1 3 2>/dev/null && as_root mv -f "$fresh" /dev/null; then
    warn "/dev/null was a regular file; replaced it with the null device (c 1 3)"
    rm -f "${REPO_ROOT}/target/.rustc_info.json"
  else
    as_root rm -f "$fresh" 2>/dev/null || true
    : >/dev/null 2>&1 || true
    warn "/dev/null is not a character device and cannot be replaced; commands that read it may fail"
  fi
}

# ---------------------------------------------------------------------------------------------
# Python virtualenv with the pinned tools

# `python -m venv DIR`; where Debian ships venv (ensurepip) separately, python3-venv is installed
# first and the venv made again.
_make_venv() {
  local python="$1"
  "$python" -m venv "$VENV_DIR" 2>/dev/null && return 0
  rm -rf "$VENV_DIR"
  local version
  version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || return 1
  apt_install python3-venv "python${version}-venv" && "$python" -m venv "$VENV_DIR"
}

_requirements_hash() {
  printf '%s\n' "${PY_REQUIREMENTS[@]}" | sha256sum | cut -d' ' -f1
}

_venv_is_current() {
  local stamp="${VENV_DIR}/.requirements.sha256"
  [[ -x "${VENV_DIR}/bin/python" && -x "${VENV_DIR}/bin/moto_server" && -f "$stamp" ]] &&
    [[ "$(<"$stamp")" == "$(_requirements_hash)" ]]
}

_venv_install() {
  local python="${PYTHON:-python3}"
  command -v "$python" >/dev/null 2>&1 || die "${python} not found; it is needed for the moto server"
  if [[ ! -x "${VENV_DIR}/bin/python" ]] || ! "${VENV_DIR}/bin/python" -c '' 2>/dev/null; then
    log "creating ${VENV_DIR}"
    rm -rf "$VENV_DIR"
    _make_venv "$python" || die "${python} -m venv failed (on Debian: apt-get install python3-venv)"
  fi
  log "installing ${PY_REQUIREMENTS[*]}"
  # --no-compile: byte-compiling all of moto's dependencies (sympy, cfn-lint, botocore) costs
  # ~15 s; Python compiles the few modules a test run imports on first use instead.
  "${VENV_DIR}/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
    "${PY_REQUIREMENTS[@]}" || die "pip install failed"
  _requirements_hash >"${VENV_DIR}/.requirements.sha256"
}

ensure_venv() {
  if ! _venv_is_current; then
    # Serialise concurrent callers (two scripts started at once) on a lock next to the venv.
    if command -v flock >/dev/null 2>&1; then
      (
        flock 9
        _venv_is_current || _venv_install
      ) 9>"${VENV_DIR}.lock" || die "could not set up ${VENV_DIR}"
    else
      _venv_install
    fi
  fi
  export MOTO_SERVER="${VENV_DIR}/bin/moto_server"
  export VENV_PYTHON="${VENV_DIR}/bin/python"
}

# ---------------------------------------------------------------------------------------------
# Processes

track_pid() { CLEANUP_PIDS+=("$1"); }

# Terminates every tracked process: SIGTERM, up to ~3 s grace, then SIGKILL.
cleanup_processes() {
  local pid i
  for pid in "${CLEANUP_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || continue
    for ((i = 0; i < 30; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  CLEANUP_PIDS=()
}

# Prints a free TCP port on 127.0.0.1.
free_port() {
  "${VENV_PYTHON:-python3}" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# wait_http URL PID TIMEOUT_S: polls URL until it answers, while PID lives.
wait_http() {
  "${VENV_PYTHON:-python3}" - "$1" "$2" "$3" <<'EOF'
import os, sys, time, urllib.request, urllib.error
url, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("process %d exited before %s answered" % (pid, url))
    try:
        urllib.request.urlopen(url, timeout=1).read()
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # any HTTP answer means the server is up
    except Exception:
        time.sleep(0.05)
sys.exit("%s did not answer within %gs" % (url, timeout))
EOF
}

# start_moto PORT_VAR [LOG_FILE]: starts moto_server on a free port and waits until it answers.
start_moto() {
  local port_var="$1" log_file="${2:-}" port
  [[ -n "${MOTO_SERVER:-}" ]] || ensure_venv
  [[ -n "$log_file" ]] || log_file="$(mktemp "${TMPDIR:-/tmp}/moto.XXXXXX.log")"
  port="$(free_port)"
  "$MOTO_SERVER" -H 127.0.0.1 -p "$port" >"$log_file" 2>&1 &
  MOTO_PID=$!
  export MOTO_LOG="$log_file"
  track_pid "$MOTO_PID"
  if ! wait_http "http://127.0.0.1:${port}/moto-api/" "$MOTO_PID" 20; then
    tail -n 30 "$log_file" >&2 || true
    die "moto server did not start (log: ${log_file})"
  fi
  printf -v "$port_var" '%s' "$port"
  log "moto server on http://127.0.0.1:${port} (pid ${MOTO_PID})"
}

# ---------------------------------------------------------------------------------------------
# The static release binary

# Host target triple: the static build names it with --target, which keeps RUSTFLAGS off build
# scripts and proc macros (they cannot be static).
release_target() {
  rustc -vV | sed -n 's/^host: //p'
}

# build_release_binary: `cargo build --release --target <host> --bin csi-provider-aws` with
# -C target-feature=+crt-static into one target directory every user shares (RELEASE_TARGET_DIR,
# default <target>/static: apart from the debug builds, so it never waits on or invalidates them).
# The image step, scripts/build-image.sh, tests/e2e/run.sh and scripts/bench.sh all call this, so
# a CI run compiles the release binary once; later calls are cargo's no-op check (~1 s).
# RELEASE_BIN set to an executable skips cargo (a binary built by an earlier CI job).
# Exports RELEASE_BIN.
build_release_binary() {
  if [[ -n "${RELEASE_BIN:-}" && -x "${RELEASE_BIN}" ]]; then
    log "release binary: ${RELEASE_BIN} (prebuilt)"
    return 0
  fi
  local target target_dir start
  target="$(release_target)" || die "rustc -vV failed"
  target_dir="${RELEASE_TARGET_DIR:-${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/static}"
  log "static release build (${target}, crt-static) in ${target_dir}"
  start=$SECONDS
  RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$target_dir" \
    cargo build --release --locked --target "$target" --bin csi-provider-aws
  export RELEASE_BIN="${target_dir}/${target}/release/csi-provider-aws"
  [[ -x "$RELEASE_BIN" ]] || die "no binary at ${RELEASE_BIN}"
  log "release binary: ${RELEASE_BIN} ($(stat -c %s "$RELEASE_BIN") bytes; cargo took $((SECONDS - start))s)"
}

ensure_dev_null
