#!/usr/bin/env bash
# `make lab-down`: removes everything `make lab` created in either VIP mode (containers,
# networks, the API emulator, the kubeconfig). Idempotent; safe when nothing exists. The node
# images stay: they are build caches, edge-node shared with molecule (`docker rmi
# edge-node:latest edge-cluster-node:latest` drops them).
set -euo pipefail
source "$(dirname "$0")/common.sh"

hold_lab_lock
"$DOCKER" info >/dev/null 2>&1 && {
  # Only what carries the lab's label: an unrelated container named web1 is left alone.
  "$DOCKER" ps -aq --filter "label=$LAB_LABEL" | xargs -r "$DOCKER" rm -f >/dev/null
  "$DOCKER" network ls -q --filter "label=$LAB_LABEL" | xargs -r "$DOCKER" network rm >/dev/null
}
"$REPO/lab/emulator.sh" stop lab
rm -f "$LAB_KUBECONFIG" "$LAB_VIP_MODE_FILE"
log "lab removed"
