#!/usr/bin/env bash
# `make vm-lab`: the VM lab (docs/lab.md, "VM lab"): QEMU VMs with Debian's kernel (IPVS) on
# 198.19.0.0/24, the API emulator and the backends on the host side, then site.yml with LVS on
# and requests through the VIP. Safe to run again: running VMs are reused.
#   lab/vm/up.sh [--no-site] [--kubeconfig FILE] [TOPOLOGY...]    (topologies: a b seed; default a)
# seed (`make lab TOPOLOGY=seed`, docs/seed-topology.md): two director VMs in front of cluster
# node containers running a stand-in in-cluster controller, inventory/vm-lab-seed.
# --no-site stops once the VMs answer ssh (molecule's create step); --kubeconfig says where
# the emulator's kubeconfig goes (default inventory/vm-lab/kubeconfig, where the inventory
# reads it).
set -euo pipefail
source "$(dirname "$0")/common.sh"
export PATH=$VENV_BIN:$PATH ANSIBLE_CONFIG=$REPO/ansible.cfg

readonly SSH_SECONDS=240 VIP_SECONDS=90
readonly -A TOPOLOGY_VIPS=([a]=198.19.0.100 [b]=198.19.0.101 [seed]=198.19.0.102)

site=true kubeconfig=$REPO/inventory/vm-lab/kubeconfig topologies=()
while (($# > 0)); do
  case $1 in
    --no-site) site=false ;;
    --kubeconfig) kubeconfig=$2; shift ;;
    a | b | seed) topologies+=("$1") ;;
    *) echo "usage: $0 [--no-site] [--kubeconfig FILE] [a] [b] [seed]" >&2; exit 2 ;;
  esac
  shift
done
((${#topologies[@]} > 0)) || topologies=(a)

# Every node sees the same answer through every VIP: 200 from each backend by Host.
check_through_vip() {
  local vip=$1 deadline=$((SECONDS + VIP_SECONDS)) app answer
  for app in "${VM_BACKENDS[@]}"; do
    until answer=$(curl -sf -m 3 -H "Host: $app" "http://$vip/") && [[ $answer == "$app "* ]]; do
      if ((SECONDS >= deadline)); then
        echo "no answer from $app through the VIP $vip after ${VIP_SECONDS}s" >&2
        exit 1
      fi
      sleep 0.5
    done
    log "through the VIP http://$vip/ Host: $app -> $answer"
  done
}

# The 2017 check's third answer: a Host no Ingress names gets the controller's 404.
check_unrouted_host() {
  local vip=$1 status
  status=$(curl -s -o /dev/null -w '%{http_code}' -m 3 -H 'Host: unknown.example' "http://$vip/")
  if [[ $status != 404 ]]; then
    echo "Host unknown.example through the VIP $vip answered $status, not 404" >&2
    exit 1
  fi
  log "through the VIP http://$vip/ Host: unknown.example -> $status"
}

hold_vm_lock
started=$SECONDS
image_dir=$("$REPO/lab/vm/image.sh")
"$REPO/lab/vm/net.sh" up
# The lab's manifests with the backends' addresses on this subnet. Not the Docker lab's
# cluster nodes (cluster-nodes.yaml): the VM lab has none, and their Nodes' pod networks would
# make every agent refuse the backends here (outside the backend networks: 503).
rm -rf "$VM_STATE_DIR/manifests"
mkdir -p "$VM_STATE_DIR/manifests"
for manifest in "$REPO"/lab/manifests/*.yaml; do
  [[ ${manifest##*/} == cluster-nodes.yaml ]] && continue
  sed 's/198\.51\.100\./198.19.0./g' "$manifest" >"$VM_STATE_DIR/manifests/${manifest##*/}"
done
"$REPO/lab/emulator.sh" start vm "$VM_HOST_ADDRESS" "$VM_STATE_DIR/manifests" "$kubeconfig"

names=()
for topology in "${topologies[@]}"; do
  read -r -a members <<<"${VM_TOPOLOGIES[$topology]}"
  names+=("${members[@]}")
done
log "VMs ($("$REPO/lab/vm/vm.sh" accel "$image_dir")): ${names[*]}"
for name in "${names[@]}"; do
  "$REPO/lab/vm/vm.sh" start "$name" "${VM_ADDRESSES[$name]}" "$image_dir"
done
# The seed topology's cluster nodes are containers: they start while the VMs boot.
if [[ " ${topologies[*]} " == *" seed "* ]]; then
  "$REPO/lab/vm/seed_nodes.sh" up
fi
waits=()
for name in "${names[@]}"; do
  "$REPO/lab/vm/vm.sh" wait "$name" "${VM_ADDRESSES[$name]}" "$SSH_SECONDS" &
  waits+=($!)
done
for pid in "${waits[@]}"; do
  wait "$pid"
done
log "VMs answer ssh after $((SECONDS - started)) s"
$site || exit 0

cd "$REPO"
edge_topologies=()
for topology in "${topologies[@]}"; do
  [[ $topology == seed ]] || edge_topologies+=("$topology")
done
if ((${#edge_topologies[@]} > 0)); then
  limit=$(printf 'lvs_%s,' "${edge_topologies[@]}")
  ansible-playbook -i inventory/vm-lab --limit "${limit%,}" edgeops.edge.site
fi
if [[ " ${topologies[*]} " == *" seed "* ]]; then
  ansible-playbook -i inventory/vm-lab-seed edgeops.edge.site
  check_unrouted_host "${TOPOLOGY_VIPS[seed]}"
fi
for topology in "${topologies[@]}"; do
  check_through_vip "${TOPOLOGY_VIPS[$topology]}"
done
log "VM lab up in $((SECONDS - started)) s; ssh: ssh -i $VM_SSH_KEY root@198.19.0.11"
