#!/usr/bin/env bash
# The VM lab's network: a bridge in the private namespace edge-vm, the host joined to it by a
# veth pair (198.19.0.1), and one small namespace per backend on the bridge, each running
# lab/backend.py on port 80 (the "pods" the EndpointSlices name).
#   net.sh up     create what is missing, start the backends (idempotent)
#   net.sh down   stop the backends, remove the namespaces and the veth (no-op when absent)
#   net.sh tap NAME   create tap device NAME on the bridge (for one VM)
set -euo pipefail
source "$(dirname "$0")/common.sh"

in_netns() { ip netns exec "$VM_NETNS" "$@"; }

backend_netns() { echo "$VM_NETNS-$1"; }

up() {
  if ! ip netns list | grep -qx "$VM_NETNS\( .*\)\?"; then
    ip netns add "$VM_NETNS"
  fi
  in_netns ip link set lo up
  if ! in_netns ip link show "$VM_BRIDGE" >/dev/null 2>&1; then
    # No STP, no forwarding delay: a tap forwards from the moment its VM starts.
    in_netns ip link add "$VM_BRIDGE" type bridge stp_state 0 forward_delay 0
  fi
  in_netns ip link set "$VM_BRIDGE" up
  if ! ip link show "$VM_HOST_VETH" >/dev/null 2>&1; then
    ip link add "$VM_HOST_VETH" type veth peer name "$VM_NETNS_VETH" netns "$VM_NETNS"
  fi
  in_netns ip link set "$VM_NETNS_VETH" master "$VM_BRIDGE" up
  ip address replace "$VM_HOST_ADDRESS/$VM_PREFIX" dev "$VM_HOST_VETH"
  ip link set "$VM_HOST_VETH" up
  for name in "${VM_BACKENDS[@]}"; do
    start_backend "$name"
  done
}

start_backend() {
  local name=$1 netns pidfile
  netns=$(backend_netns "$name") pidfile=$VM_STATE_DIR/backend-$name.pid
  if ! ip netns list | grep -qx "$netns\( .*\)\?"; then
    ip netns add "$netns"
    ip link add "bk-$name" type veth peer name eth0 netns "$netns"
    ip link set "bk-$name" netns "$VM_NETNS"
    in_netns ip link set "bk-$name" master "$VM_BRIDGE" up
    ip netns exec "$netns" ip link set lo up
    ip netns exec "$netns" ip address add "${VM_BACKEND_ADDRESSES[$name]}/$VM_PREFIX" dev eth0
    ip netns exec "$netns" ip link set eth0 up
    ip netns exec "$netns" ip route add default via "$VM_HOST_ADDRESS"
  fi
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    return
  fi
  mkdir -p "$VM_STATE_DIR"
  # setsid: the backend outlives the script; 7>&- 8>&- 9>&-: it must not hold the locks.
  setsid ip netns exec "$netns" python3 "$REPO/lab/backend.py" --app "$name" --version v1 \
    </dev/null >"$VM_STATE_DIR/backend-$name.log" 2>&1 7>&- 8>&- 9>&- &
  echo $! >"$pidfile"
}

down() {
  local name pidfile
  for name in "${VM_BACKENDS[@]}"; do
    pidfile=$VM_STATE_DIR/backend-$name.pid
    if [[ -f $pidfile ]]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
    ip netns delete "$(backend_netns "$name")" 2>/dev/null || true
  done
  # Deleting the namespace removes the bridge, the taps and the veth's peer with it.
  ip netns delete "$VM_NETNS" 2>/dev/null || true
  ip link delete "$VM_HOST_VETH" 2>/dev/null || true
}

tap() {
  local name=$1
  in_netns ip link show "$name" >/dev/null 2>&1 ||
    in_netns ip tuntap add dev "$name" mode tap
  in_netns ip link set "$name" master "$VM_BRIDGE" up
}

case ${1:-} in
  up) up ;;
  down) down ;;
  tap) tap "$2" ;;
  *) echo "usage: $0 up | down | tap NAME" >&2; exit 2 ;;
esac
