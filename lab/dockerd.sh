#!/usr/bin/env bash
# Makes sure a Docker engine answers on the default socket. On a host booted with systemd the
# docker.io package's unit is started; on machines without an init system (containers, CI
# sandboxes) dockerd is started in the background, detached from the caller's session so that
# it outlives `make`. Serialised with a lock: several `make` runs may call this at once.
set -euo pipefail

readonly DOCKER=/usr/bin/docker # Debian's CLI; /usr/local/bin/docker may be an unrelated one
readonly LOG=/var/log/dockerd.log
readonly WAIT_SECONDS=60

engine_answers() { "$DOCKER" info >/dev/null 2>&1; }

# A pidfile left by an engine that was killed (a machine's processes ended, not the engine
# stopped) names a PID that another process may have taken since: dockerd then refuses to
# start, or waits on a containerd that is not there ("containerd is still running", then
# "timeout waiting for containerd to start"). Such a file is removed; one that names a live
# process of its own program is left to the engine.
remove_stale_pidfile() {
  local file=$1 program=$2 pid
  [[ -f $file ]] || return 0
  pid=$(<"$file")
  if [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$program" ]]; then
    return 0
  fi
  echo "removing $file: PID ${pid:-none} is not a running $program"
  rm -f "$file"
}

main() {
  engine_answers && exit 0

  exec 9>/run/edge-lab-dockerd.lock
  flock 9
  engine_answers && exit 0

  if [[ -d /run/systemd/system ]]; then
    systemctl start docker.service
  elif ! pgrep -x dockerd >/dev/null; then
    remove_stale_pidfile /var/run/docker.pid dockerd
    remove_stale_pidfile /var/run/docker/containerd/containerd.pid containerd
    echo "starting dockerd in the background (log: $LOG)"
    setsid -f /usr/sbin/dockerd >>"$LOG" 2>&1 </dev/null 9>&- # not holding our lock forever
  fi

  for ((tenth = 0; tenth < WAIT_SECONDS * 10; tenth++)); do
    engine_answers && exit 0
    sleep 0.1
  done
  echo "dockerd did not answer within ${WAIT_SECONDS}s; the end of $LOG:" >&2
  tail -n 20 "$LOG" >&2
  exit 1
}

# Sourced (lab/tests/test_dockerd.py), it only defines its functions.
[[ ${BASH_SOURCE[0]} != "$0" ]] || main
