# shellcheck shell=bash
# A Docker engine for the image checks. Source it after lib.sh; do not execute it.
#
#   ensure_docker_engine  use the engine `docker info` reaches (DOCKER_HOST or the default
#                         socket); when none answers, start a private one: Debian's dockerd
#                         (`apt-get install docker.io` when missing) with its own data, exec and
#                         socket directories, no bridge and no iptables rules, and export
#                         DOCKER_HOST. Runs dockerd as root (sudo when not root). Returns
#                         non-zero through need_tool when there is no docker or dockerd.
#   stop_docker_engine    stop the engine ensure_docker_engine started (by its pid; no-op
#                         otherwise) and remove its directories. Call it from your EXIT trap.
#
# The private engine reaches no registry: only `FROM scratch` and local images build and run.
# Containers that must reach a server on 127.0.0.1 (moto) run with `--network host`.

ENGINE_DIR=""
ENGINE_PID=""

docker_answers() {
  docker info >/dev/null 2>&1
}

ensure_docker_engine() {
  if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
    docker_answers && return 0 # a remote or rootless engine needs no local dockerd
    apt_install docker.io || warn "could not install docker.io with apt-get"
  fi
  need_tool docker "Debian package docker.io" || return
  if docker_answers; then
    log "Docker engine: $(docker version -f '{{.Server.Version}}' 2>/dev/null) (already running)"
    return 0
  fi
  need_tool dockerd "Debian package docker.io" || return
  can_be_root || need_tool "root or sudo" "dockerd runs as root" false || return
  _start_private_engine
}

_start_private_engine() {
  # Short path: the socket path must fit a unix socket address (108 bytes).
  ENGINE_DIR="$(mktemp -d /tmp/csi-engine.XXXXXX)"
  local sock="${ENGINE_DIR}/docker.sock" pidfile="${ENGINE_DIR}/docker.pid" i
  log "starting a private Docker engine (${ENGINE_DIR})"
  as_root dockerd --bridge=none --iptables=false --ip6tables=false \
    --data-root "${ENGINE_DIR}/data" --exec-root "${ENGINE_DIR}/exec" \
    -H "unix://${sock}" -p "$pidfile" >"${ENGINE_DIR}/dockerd.log" 2>&1 &
  export DOCKER_HOST="unix://${sock}"
  for ((i = 0; i < 300; i++)); do
    [[ -z "$ENGINE_PID" && -s "$pidfile" ]] && ENGINE_PID="$(as_root cat "$pidfile")"
    if [[ -n "$ENGINE_PID" ]] && docker_answers; then
      is_root || as_root chown "$(id -u)" "$sock"
      log "Docker engine $(docker version -f '{{.Server.Version}}') up (pid ${ENGINE_PID}) in $((i / 10)).$((i % 10))s"
      return 0
    fi
    if [[ -n "$ENGINE_PID" ]] && ! as_root kill -0 "$ENGINE_PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  tail -n 30 "${ENGINE_DIR}/dockerd.log" >&2 || true
  die "the private Docker engine did not start (log above)"
}

stop_docker_engine() {
  [[ -n "$ENGINE_DIR" ]] || return 0
  local i
  if [[ -n "$ENGINE_PID" ]]; then
    # dockerd stops its containers and the containerd it started, then exits.
    as_root kill -TERM "$ENGINE_PID" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
      as_root kill -0 "$ENGINE_PID" 2>/dev/null || break
      sleep 0.1
    done
    if as_root kill -0 "$ENGINE_PID" 2>/dev/null; then
      warn "dockerd (pid ${ENGINE_PID}) still running after 20s; killing it"
      as_root kill -KILL "$ENGINE_PID" 2>/dev/null || true
    fi
    log "Docker engine stopped (pid ${ENGINE_PID})"
  fi
  # dockerd leaves the host network namespace bind-mounted at <exec-root>/netns/default.
  local mnt
  while read -r mnt; do
    as_root umount -l "$mnt" || warn "could not unmount ${mnt}"
  done < <(awk -v dir="${ENGINE_DIR}/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r)
  as_root rm -rf "$ENGINE_DIR" || warn "could not remove ${ENGINE_DIR}"
  ENGINE_DIR="" ENGINE_PID=""
  unset DOCKER_HOST
}
