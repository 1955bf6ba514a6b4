# Shared by deploy/docker/build.sh and scripts/container_smoke.sh (sourced): a working Docker daemon.
#
# docker_up: installs docker.io (Debian's package) when dockerd is missing, and starts a dockerd of our own in the
# background when none answers: overlay2 (vfs where overlay2 cannot mount), no iptables, no bridge, so the
# containers use host networking; its log is $DOCKERD_LOG.  DOCKERD_STARTED=1 says this shell started it;
# docker_down stops only that one (by its pid).  Fails with one line `container: error: ...` when the daemon
# cannot run here, with the daemon's last log lines.

DOCKERD_STARTED=${DOCKERD_STARTED:-0}
DOCKERD_LOG=${DOCKERD_LOG:-/tmp/edge_maas_dockerd.log}
DOCKERD_PIDFILE=${DOCKERD_PIDFILE:-/tmp/edge_maas_dockerd.pid}

die() { echo "container: error: $*" >&2; exit 2; }

apt_install() {
  command -v apt-get >/dev/null || die "$1 is missing and there is no apt-get to install it"
  [ "$(id -u)" = 0 ] || die "$1 is missing; install it (apt-get install $*) or run as root"
  echo "[docker] apt-get install $*"
  # update only when the package is unknown (a stale list cannot find it)
  apt-cache show "$1" >/dev/null 2>&1 || apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

docker_up() {
  command -v dockerd >/dev/null || apt_install docker.io
  if docker info >/dev/null 2>&1; then return 0; fi
  [ "$(id -u)" = 0 ] || die "no Docker daemon answers and only root can start one"
  local driver
  for driver in overlay2 vfs; do
    echo "[docker] starting dockerd (storage driver $driver, host networking only; log $DOCKERD_LOG)"
    # no bridge, no iptables: the sandboxes this runs in have no netfilter, and the stack only uses loopback
    dockerd --storage-driver "$driver" --iptables=false --ip6tables=false --bridge=none \
      >"$DOCKERD_LOG" 2>&1 &
    echo $! >"$DOCKERD_PIDFILE"
    DOCKERD_STARTED=1
    local i
    for i in $(seq 1 60); do
      docker info >/dev/null 2>&1 && return 0
      kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null || break
      sleep 0.5
    done
    docker_down
  done
  tail -5 "$DOCKERD_LOG" >&2
  die "dockerd did not start (tried overlay2 and vfs); its log is $DOCKERD_LOG"
}

docker_down() {
  [ "$DOCKERD_STARTED" = 1 ] && [ -f "$DOCKERD_PIDFILE" ] || return 0
  local pid
  pid=$(cat "$DOCKERD_PIDFILE")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  rm -f "$DOCKERD_PIDFILE"
  DOCKERD_STARTED=0
}
