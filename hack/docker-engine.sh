#!/usr/bin/env bash
# The Docker engine that `make images` and the image tests build with.
#
#   start    an engine already answers: leave it alone. Otherwise install Debian's
#            docker.io when dockerd is missing, start dockerd (no systemd here) with a
#            pid file and a log file, and wait until `docker info` answers.
#   stop     stop the dockerd that `start` started, by the PID in its pid file; an
#            engine this script did not start is never touched.
#   status   say whether an engine answers and whether this script started it.
#
# Idempotent: `start` twice starts one engine, `stop` twice stops it once.
# Environment: DOCKERD_DIR (pid and log files, default /run/modelops-bundle/dockerd;
# /run is emptied at boot, like the process it describes), DOCKER (the CLI, default docker).
set -euo pipefail

DIR=${DOCKERD_DIR:-/run/modelops-bundle/dockerd}
PIDFILE=$DIR/dockerd.pid
LOG=$DIR/dockerd.log
DOCKER=${DOCKER:-docker}
START_TIMEOUT=${DOCKERD_START_TIMEOUT:-60}

say() { printf '>> %s\n' "$*"; }
die() {
  printf 'docker-engine: %s\n' "$*" >&2
  exit 1
}

answers() { "$DOCKER" info --format '{{.ServerVersion}}' 2>/dev/null; }

# The PID in our pid file when that process is still a dockerd, else nothing.
our_pid() {
  local pid
  [[ -r $PIDFILE ]] || return 1
  pid=$(<"$PIDFILE")
  [[ $pid =~ ^[0-9]+$ && "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] || return 1
  echo "$pid"
}

# One line on an engine that answers: whether this script started it (and may stop it).
describe() {
  local pid
  if pid=$(our_pid); then
    say "Docker engine $1 answers: dockerd $pid, started by this script"
  else
    say "Docker engine $1 answers: not started by this script (left alone)"
  fi
}

install_engine() {
  [[ $(id -u) == 0 ]] || die "dockerd is missing and installing it needs root: apt-get install docker.io"
  command -v apt-get >/dev/null || die "dockerd is missing and this is not a Debian system: install a Docker engine"
  say "installing Debian's docker.io (dockerd, containerd, runc)"
  # policy-rc.d keeps the package's init script from starting a second, unmanaged engine.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 \
    --no-install-recommends docker.io >/dev/null
}

cmd_start() {
  local version pid
  if version=$(answers); then
    describe "$version"
    return 0
  fi
  command -v dockerd >/dev/null || install_engine
  [[ $(id -u) == 0 ]] || die "no Docker engine answers and starting dockerd needs root"
  mkdir -p "$DIR"
  if ! pid=$(our_pid); then
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
      say "starting the engine with systemd (systemctl start docker)"
      systemctl start docker
    else
      say "no systemd: starting dockerd (pid file $PIDFILE, log $LOG)"
      # A pid file left by an engine that was killed: dockerd refuses to start while the
      # PID in it names any live process.
      rm -f "$PIDFILE"
      # setsid: the engine outlives this shell and make; dockerd writes its own pid file.
      # The system PATH only: dockerd finds containerd and its shim on PATH, and a clone's
      # .cache/bin (the real node's containerd build) would tie the engine to that clone.
      setsid env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        dockerd --pidfile "$PIDFILE" >>"$LOG" 2>&1 </dev/null &
    fi
  fi
  local deadline=$((SECONDS + START_TIMEOUT))
  until version=$(answers); do
    if ((SECONDS > deadline)); then
      tail -n 20 "$LOG" >&2 2>/dev/null || true
      die "dockerd did not answer within ${START_TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.5
  done
  say "Docker engine $version answers (dockerd $(our_pid || echo '(systemd)'))"
}

cmd_stop() {
  local pid i
  if ! pid=$(our_pid); then
    rm -f "$PIDFILE"
    say "no dockerd started by this script is running: nothing to stop"
    return 0
  fi
  say "stopping dockerd $pid (started by this script)"
  kill -TERM "$pid"
  # dockerd stops its containers and its containerd child before it exits.
  for ((i = 0; i < 120; i++)); do
    [[ -e /proc/$pid ]] || break
    sleep 0.5
  done
  if [[ -e /proc/$pid ]]; then
    die "dockerd $pid still runs 60s after SIGTERM (log: $LOG)"
  fi
  rm -f "$PIDFILE"
  say "dockerd $pid stopped"
}

cmd_status() {
  local version
  if version=$(answers); then
    describe "$version"
  else
    say "no Docker engine answers"
    return 1
  fi
}

case ${1:-} in
  start | stop | status) "cmd_$1" ;;
  *) die "usage: $0 start|stop|status" ;;
esac
