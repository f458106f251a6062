#!/usr/bin/env bash
# The cluster nodes (lab/cluster_node.py on the image of lab/cluster_image.sh) on a Docker
# network, for the lab (lab/up.sh) and for molecule's Docker scenario (molecule/default/
# prepare.yml), and the edges' side of them.
#
#   lab/cluster_nodes.sh up NETWORK LABEL API_URL CONTAINER_PREFIX NODE=ADDRESS...
#       each Node NODE of lab/manifests/cluster-nodes.yaml as the container
#       CONTAINER_PREFIX+NODE (hostname NODE) at ADDRESS on NETWORK, marked with LABEL, reading
#       its pods from the API at API_URL; reused when it exists. Returns once every node has
#       its pods, NodePorts and BGP set up.
#   lab/cluster_nodes.sh edge CONTAINER...
#       on each edge node container: until BGP brings the routes (and after a withdrawal), a
#       packet to a pod fails at once on the edge instead of leaving through the host's default
#       route; the learned /24s are longer.
set -euo pipefail
source "$(dirname "$0")/common.sh"

readonly READY_SECONDS=120

start_node() {
  local network=$1 label=$2 api=$3 container=$4 node=$5 address=$6 running
  if running=$("$DOCKER" inspect -f '{{.State.Running}}' "$container" 2>/dev/null); then
    [[ $running == true ]] || "$DOCKER" start "$container" >/dev/null
    log "$container $address: reusing"
    return
  fi
  # NET_ADMIN: the pod network and nftables; FRR's zebra wants NET_RAW and SYS_ADMIN too.
  "$DOCKER" run -d --name "$container" --hostname "$node" --label "$label=1" \
    --network "$network" --ip "$address" \
    --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_ADMIN \
    -v "$REPO/lab/cluster_node.py:/srv/cluster_node.py:ro" \
    -v "$REPO/lab/backend.py:/srv/backend.py:ro" \
    "$CLUSTER_NODE_IMAGE:latest" python3 /srv/cluster_node.py run --api "$api" >/dev/null
  log "$container $address: started"
}

# A cluster node is ready once lab/cluster_node.py has its pods, NodePorts and BGP set up.
wait_for_node() {
  local container=$1 deadline=$((SECONDS + READY_SECONDS))
  until "$DOCKER" exec "$container" test -e /run/cluster-node.ready 2>/dev/null; do
    if ((SECONDS >= deadline)) ||
      [[ $("$DOCKER" inspect -f '{{.State.Running}}' "$container") != true ]]; then
      echo "$container: not set up after ${READY_SECONDS}s; its log:" >&2
      "$DOCKER" logs --tail 20 "$container" >&2
      exit 1
    fi
    sleep 0.2
  done
}

up() {
  (($# >= 5)) || {
    echo "usage: $0 up NETWORK LABEL API_URL CONTAINER_PREFIX NODE=ADDRESS..." >&2
    exit 2
  }
  local network=$1 label=$2 api=$3 prefix=$4 spec
  shift 4
  "$REPO/lab/cluster_image.sh"
  for spec in "$@"; do
    start_node "$network" "$label" "$api" "$prefix${spec%%=*}" "${spec%%=*}" "${spec#*=}"
  done
  for spec in "$@"; do
    wait_for_node "$prefix${spec%%=*}"
  done
}

edge() {
  local container
  for container in "$@"; do
    "$DOCKER" exec "$container" ip route replace unreachable "$LAB_POD_RANGE"
  done
}

case ${1:-} in
  up | edge) "$@" ;;
  *)
    echo "usage: $0 up NETWORK LABEL API_URL CONTAINER_PREFIX NODE=ADDRESS... | edge CONTAINER..." >&2
    exit 2
    ;;
esac
