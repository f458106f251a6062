#!/usr/bin/env bash
# `make vm-lab-down` (and molecule -s lvs's destroy): powers off every VM of the VM lab,
# stops the backends, the seed topology's cluster node containers and the API emulator, removes
# the namespaces, the veth and the taps.
# Idempotent; safe when nothing exists. The image in build/vm/ stays (a build cache).
set -euo pipefail
source "$(dirname "$0")/common.sh"

hold_vm_lock
for pidfile in "$VM_STATE_DIR"/*.pid; do
  [[ -e $pidfile ]] || continue
  name=${pidfile##*/} name=${name%.pid}
  [[ $name == backend-* ]] || "$REPO/lab/vm/vm.sh" poweroff "$name"
done
# Whatever still runs in the VMs' namespace is a VM of ours whose pidfile is gone.
if ip netns list | grep -qx "$VM_NETNS\( .*\)\?"; then
  ip netns pids "$VM_NETNS" | xargs -r kill -KILL
fi
# The seed topology's cluster node containers (their veths go with them).
"$REPO/lab/vm/seed_nodes.sh" down
"$REPO/lab/vm/net.sh" down
"$REPO/lab/emulator.sh" stop vm
rm -f "$REPO/inventory/vm-lab/kubeconfig" "$VM_STATE_DIR/accel" "$VM_STATE_DIR"/*.qcow2
log "VM lab removed"
