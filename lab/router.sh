#!/usr/bin/env bash
# BGP mode's router and client (`make lab VIP_MODE=bgp`, docs/bgp.md "The lab"):
#
#   lab/router.sh up
#       the client network, the router container (lab/router.py on the cluster node image: FRR,
#       peering with every edge, ECMP) on both networks, and the client container behind it;
#       reused when they exist. LAB_ECMP=plain (default resilient) gives the router zebra's plain
#       hash-threshold ECMP instead of resilient nexthop groups; a router of the other kind is
#       replaced (the edges' sessions come back within seconds).
#   lab/router.sh edge CONTAINER...
#       on each edge node: the route back to the client network, through the router.
#   lab/router.sh client COMMAND...
#       COMMAND, from this machine, in the client's network namespace (the lab's requests and
#       the drill's load come from there).
set -euo pipefail
source "$(dirname "$0")/common.sh"

readonly READY_SECONDS=60
readonly ECMP=${LAB_ECMP:-resilient}
readonly ECMP_LABEL=$LAB_LABEL.ecmp # the kind of ECMP a router container was made with

ensure_client_network() {
  "$DOCKER" network inspect "$LAB_CLIENT_NETWORK" >/dev/null 2>&1 && return
  "$DOCKER" network create --driver bridge --subnet "$LAB_CLIENT_SUBNET" \
    --gateway "$LAB_CLIENT_GATEWAY" -o com.docker.network.bridge.name="$LAB_CLIENT_NETWORK" \
    --label "$LAB_LABEL=1" "$LAB_CLIENT_NETWORK" >/dev/null
  log "network $LAB_CLIENT_NETWORK $LAB_CLIENT_SUBNET created"
}

start_router() {
  local hashing=() edges=() name command
  [[ $ECMP == plain ]] && hashing=(--no-resilient)
  for name in "${LAB_EDGE_NODES[@]}"; do
    edges+=(--edge "${LAB_ADDRESSES[$name]}")
  done
  # BFD as the edges' (lab/bgp-mode.yml): a lost edge is dropped 300 ms after its last packet.
  command=(python3 /srv/router.py run --asn "$LAB_ROUTER_ASN" --router-id "$LAB_ROUTER_ADDRESS"
    "${edges[@]}" --vip "$LAB_VIP" --bfd-interval 100 "${hashing[@]}")
  if [[ $("$DOCKER" inspect -f "{{index .Config.Labels \"$ECMP_LABEL\"}}" "$LAB_ROUTER" \
    2>/dev/null) == "$ECMP" ]]; then
    "$DOCKER" start "$LAB_ROUTER" >/dev/null
    log "$LAB_ROUTER $LAB_ROUTER_ADDRESS: reusing ($ECMP ECMP)"
    return
  fi
  "$DOCKER" rm -f "$LAB_ROUTER" >/dev/null 2>&1 || true
  # Created on the edges' network, joined to the client's, then started: both interfaces exist
  # when router.py starts. FRR's zebra wants NET_RAW and SYS_ADMIN besides NET_ADMIN; the
  # sysctls are per network namespace.
  "$DOCKER" create --name "$LAB_ROUTER" --hostname "$LAB_ROUTER" --label "$LAB_LABEL=1" \
    --label "$ECMP_LABEL=$ECMP" --network "$LAB_NETWORK" --ip "$LAB_ROUTER_ADDRESS" \
    --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_ADMIN \
    --sysctl net.ipv4.ip_forward=1 --sysctl net.ipv4.fib_multipath_hash_policy=1 \
    -v "$REPO/lab/router.py:/srv/router.py:ro" \
    "$CLUSTER_NODE_IMAGE:latest" "${command[@]}" >/dev/null
  "$DOCKER" network connect --ip "$LAB_ROUTER_CLIENT_ADDRESS" "$LAB_CLIENT_NETWORK" "$LAB_ROUTER"
  "$DOCKER" start "$LAB_ROUTER" >/dev/null
  log "$LAB_ROUTER $LAB_ROUTER_ADDRESS $LAB_ROUTER_CLIENT_ADDRESS: started ($ECMP ECMP)"
}

start_client() {
  if "$DOCKER" inspect "$LAB_CLIENT" >/dev/null 2>&1; then
    "$DOCKER" start "$LAB_CLIENT" >/dev/null
    log "$LAB_CLIENT $LAB_CLIENT_ADDRESS: reusing"
    return
  fi
  # The VIP through the router; anything else through the host, as Docker sets it up.
  "$DOCKER" run -d --name "$LAB_CLIENT" --hostname "$LAB_CLIENT" --label "$LAB_LABEL=1" \
    --network "$LAB_CLIENT_NETWORK" --ip "$LAB_CLIENT_ADDRESS" --cap-add NET_ADMIN \
    "$NODE_IMAGE:latest" sh -c "ip route replace $LAB_VIP/32 via $LAB_ROUTER_CLIENT_ADDRESS &&
      exec sleep infinity" >/dev/null
  log "$LAB_CLIENT $LAB_CLIENT_ADDRESS: started"
}

wait_for_router() {
  local deadline=$((SECONDS + READY_SECONDS))
  until "$DOCKER" exec "$LAB_ROUTER" test -e /run/router.ready 2>/dev/null; do
    if ((SECONDS >= deadline)) ||
      [[ $("$DOCKER" inspect -f '{{.State.Running}}' "$LAB_ROUTER") != true ]]; then
      echo "$LAB_ROUTER: not set up after ${READY_SECONDS}s; its log:" >&2
      "$DOCKER" logs --tail 20 "$LAB_ROUTER" >&2
      exit 1
    fi
    sleep 0.2
  done
}

up() {
  [[ $ECMP == resilient || $ECMP == plain ]] || {
    echo "LAB_ECMP must be resilient or plain (got '$ECMP')" >&2
    exit 2
  }
  "$REPO/lab/cluster_image.sh"
  ensure_client_network
  start_router
  start_client
  wait_for_router
}

edge() {
  local container
  for container in "$@"; do
    "$DOCKER" exec "$container" ip route replace "$LAB_CLIENT_SUBNET" via "$LAB_ROUTER_ADDRESS"
  done
}

client() {
  local pid
  pid=$("$DOCKER" inspect -f '{{.State.Pid}}' "$LAB_CLIENT")
  exec nsenter --net="/proc/$pid/ns/net" -- "$@"
}

case ${1:-} in
  up | edge | client) "$@" ;;
  *)
    echo "usage: $0 up | edge CONTAINER... | client COMMAND..." >&2
    exit 2
    ;;
esac
