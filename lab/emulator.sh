#!/usr/bin/env bash
# The Kubernetes API emulator (kubeemu) as a background process on the host, one per
# environment (the lab, molecule), with its pidfile and log in .lab/.
#   emulator.sh start NAME ADDRESS MANIFEST_DIR KUBECONFIG   reuse a running one, else start
#   emulator.sh stop NAME                                     no-op when none runs
# The address must exist on the host (the Docker network's gateway): the nodes reach it there.
set -euo pipefail
source "$(dirname "$0")/common.sh"

readonly START_SECONDS=20

usage() {
  echo "usage: $0 start NAME ADDRESS MANIFEST_DIR KUBECONFIG | stop NAME" >&2
  exit 2
}

running_pid() { # prints the pid if the pidfile names a live kubeemu process
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *kubeemu* ]] || return 1
  echo "$pid"
}

answers() { curl -sf -o /dev/null -m 2 "$1/version"; }

start() {
  local address=$1 manifests=$2 kubeconfig=$3
  local url=http://$address:$EMULATOR_PORT pid
  if pid=$(running_pid) && [[ -f $kubeconfig ]] && answers "$url"; then
    log "API emulator $name: reusing pid $pid at $url"
    return
  fi
  stop
  mkdir -p "$STATE_DIR"
  # setsid: the emulator outlives the terminal and the make run that started it. 8>&-: it
  # must not inherit (and so hold forever) the lab lock of up.sh.
  setsid "$VENV_BIN/kubeemu" --host "$address" --port "$EMULATOR_PORT" -f "$manifests" \
    --kubeconfig "$kubeconfig" </dev/null >"$logfile" 2>&1 8>&- &
  echo $! >"$pidfile"
  for ((tenth = 0; tenth < START_SECONDS * 10; tenth++)); do
    if answers "$url"; then
      log "API emulator $name: pid $(cat "$pidfile") at $url, kubeconfig $kubeconfig"
      return
    fi
    running_pid >/dev/null || break
    sleep 0.1
  done
  echo "API emulator $name did not answer at $url; $logfile says:" >&2
  tail -20 "$logfile" >&2
  stop
  exit 1
}

stop() {
  local pid
  if pid=$(running_pid); then
    kill "$pid"
    for ((tenth = 0; tenth < 50; tenth++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

(($# >= 2)) || usage
readonly action=$1 name=$2
readonly pidfile=$STATE_DIR/kubeemu-$name.pid logfile=$STATE_DIR/kubeemu-$name.log
case $action in
  start) (($# == 5)) || usage; start "$3" "$4" "$5" ;;
  stop) (($# == 2)) || usage; stop ;;
  *) usage ;;
esac
