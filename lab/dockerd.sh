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

engine_answers && exit 0

exec 9>/run/edge-lab-dockerd.lock
flock 9
engine_answers && exit 0

if [[ -d /run/systemd/system ]]; then
  systemctl start docker.service
elif ! pgrep -x dockerd >/dev/null; then
  echo "starting dockerd in the background (log: $LOG)"
  setsid -f /usr/sbin/dockerd >>"$LOG" 2>&1 </dev/null 9>&- # not holding our lock forever
fi

for ((tenth = 0; tenth < WAIT_SECONDS * 10; tenth++)); do
  engine_answers && exit 0
  sleep 0.1
done
echo "dockerd did not answer within ${WAIT_SECONDS}s; see $LOG" >&2
exit 1
