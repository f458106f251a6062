#!/usr/bin/env bash
# The seed topology's cluster nodes (docs/seed-topology.md): containers of the lab's cluster
# node image, cheap next to a VM, on the VM lab's bridge. Each starts with `--network none`
# and gets a veth pair whose other end joins the bridge in the namespace edge-vm (as net.sh
# joins the backends), so that the directors' IPVS (LVS-DR: only the MAC changes) reaches it
# on the same segment. Ansible reaches it with the docker connection; the lvs role's
# real-server part (playbooks/cluster_nodes.yml) runs there under the container's systemd.
# Each runs the stand-in in-cluster controller (lab/seed_controller.py) on port 80, its health
# endpoint on 10254.
#   seed_nodes.sh up      start what is missing (idempotent), return once each controller answers
#   seed_nodes.sh down    remove the containers (their veths go with them)
set -euo pipefail
source "$(dirname "$0")/common.sh"

readonly BOOT_SECONDS=120 CONTROLLER_SECONDS=30

in_netns() { ip netns exec "$VM_NETNS" "$@"; }

# The routes of the stand-in controller: Host web1 and web2 to their backends.
controller_routes() {
  local app
  for app in "${VM_BACKENDS[@]}"; do
    printf -- '--route %s=%s:80 ' "$app" "${VM_BACKEND_ADDRESSES[$app]}"
  done
}

start_node() {
  local name=$1 running
  if running=$("$DOCKER" inspect -f '{{.State.Running}}' "$name" 2>/dev/null); then
    [[ $running == true ]] || "$DOCKER" start "$name" >/dev/null
    log "$name: reusing"
    return
  fi
  # /proc/sys is read-only inside: the ARP sysctls of an LVS-DR real server come with the
  # container (the lvs role finds them set and only persists them).
  "$DOCKER" run -d --name "$name" --hostname "$name" --label "$VM_SEED_LABEL=1" \
    --network none "${SYSTEMD_NODE_FLAGS[@]}" \
    --sysctl net.ipv4.conf.all.arp_ignore=1 --sysctl net.ipv4.conf.all.arp_announce=2 \
    -v "$REPO/lab/seed_controller.py:/srv/seed_controller.py:ro" \
    "$CLUSTER_NODE_IMAGE:latest" >/dev/null
  log "$name: started"
}

# eth0 of the container, its peer on the bridge (again after a restart: a new namespace).
attach() {
  local name=$1 address=$2 pid veth=sd-${1#seed-}
  pid=$("$DOCKER" inspect -f '{{.State.Pid}}' "$name")
  nsenter -t "$pid" -n ip link show eth0 >/dev/null 2>&1 && return
  in_netns ip link delete "$veth" 2>/dev/null || true
  ip link add "$veth" type veth peer name eth0 netns "$pid"
  ip link set "$veth" netns "$VM_NETNS"
  in_netns ip link set "$veth" master "$VM_BRIDGE" up
  nsenter -t "$pid" -n ip address add "$address/$VM_PREFIX" dev eth0
  nsenter -t "$pid" -n ip link set eth0 up
  nsenter -t "$pid" -n ip route add default via "$VM_HOST_ADDRESS"
  log "$name $address: on $VM_BRIDGE"
}

wait_for_systemd() {
  local name=$1 state='' deadline=$((SECONDS + BOOT_SECONDS))
  # Right after `docker run` systemctl finds no bus yet and fails at once; then --wait blocks
  # until the boot is over.
  until [[ $state == running || $state == degraded ]]; do
    if ((SECONDS >= deadline)); then
      echo "$name: systemd not up after ${BOOT_SECONDS}s (state ${state:-none})" >&2
      exit 1
    fi
    state=$(timeout "$BOOT_SECONDS" "$DOCKER" exec "$name" systemctl is-system-running --wait \
      2>/dev/null) || sleep 0.2
  done
}

start_controller() {
  local name=$1 address=$2 deadline=$((SECONDS + CONTROLLER_SECONDS))
  curl -sf -m 2 "http://$address:10254/healthz" >/dev/null && return
  # The image's own nginx (Debian's default site) would hold port 80: the controller's.
  "$DOCKER" exec "$name" systemctl disable --now --quiet nginx.service
  # shellcheck disable=SC2046 # the routes are separate arguments
  "$DOCKER" exec -d "$name" python3 /srv/seed_controller.py $(controller_routes)
  until curl -sf -m 2 "http://$address:10254/healthz" >/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "$name: the stand-in controller does not answer on $address:10254" >&2
      exit 1
    fi
    sleep 0.2
  done
  log "$name: controller on $address:80, health on :10254"
}

up() {
  local name
  "$REPO/lab/dockerd.sh"
  "$REPO/lab/cluster_image.sh"
  for name in "${!VM_SEED_NODES[@]}"; do
    start_node "$name"
  done
  for name in "${!VM_SEED_NODES[@]}"; do
    wait_for_systemd "$name"
    attach "$name" "${VM_SEED_NODES[$name]}"
    start_controller "$name" "${VM_SEED_NODES[$name]}"
  done
}

down() {
  "$DOCKER" info >/dev/null 2>&1 || return 0
  "$DOCKER" ps -aq --filter "label=$VM_SEED_LABEL" | xargs -r "$DOCKER" rm -f >/dev/null
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up | down" >&2; exit 2 ;;
esac
