#!/usr/bin/env bash
# Builds the lab's cluster node image `edge-cluster-node:<hash>` (also tagged `latest`): the
# edge node image (lab/image.sh) with FRR, which the cluster nodes run as Calico's BGP would
# (nftables, for their NodePorts, is in the edge image already). <hash> covers the edge image
# and this script, so the build (an apt-get install of FRR, well under a minute) runs only
# when one of them changes.
set -euo pipefail
source "$(dirname "$0")/common.sh"

readonly PACKAGES=(frr)

"$REPO/lab/image.sh"
base=$("$DOCKER" image inspect -f '{{.Id}}' "$NODE_IMAGE:latest")
inputs_hash=$({ echo "$base"; cat "$0"; } | sha256sum | cut -c1-12)
readonly base inputs_hash TAG=$CLUSTER_NODE_IMAGE:$inputs_hash

mkdir -p "$STATE_DIR"
exec 9>"$STATE_DIR/image-cluster.lock"
flock 9

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
  "$DOCKER" tag "$TAG" "$CLUSTER_NODE_IMAGE:latest"
  exit 0
fi

log "building $TAG (FRR on the edge node image)"
started=$SECONDS
# The edge image's package lists are empty on purpose (lab/image.sh): update, install, empty.
printf 'FROM %s\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -qq -y --no-install-recommends %s >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*\n' \
  "$base" "${PACKAGES[*]}" |
  DOCKER_BUILDKIT=0 "$DOCKER" build --pull=false -q \
    --label "org.example.edge.inputs-hash=$inputs_hash" -t "$TAG" - >"$STATE_DIR/cluster-image.log" 2>&1 ||
  { tail -20 "$STATE_DIR/cluster-image.log" >&2; exit 1; }
"$DOCKER" tag "$TAG" "$CLUSTER_NODE_IMAGE:latest"

# Drop images of earlier inputs; one still used by a container stays until that is removed.
"$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' "$CLUSTER_NODE_IMAGE" |
  grep -vxF -e "$TAG" -e "$CLUSTER_NODE_IMAGE:latest" |
  xargs -r "$DOCKER" rmi >/dev/null 2>&1 || true
log "built $TAG in $((SECONDS - started)) s"
