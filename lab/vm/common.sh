# Sourced by the VM lab scripts (lab/vm/*.sh): names, addresses and directories of the QEMU
# VMs that run real LVS (docs/lab.md, "VM lab").
# shellcheck shell=bash disable=SC2034 # the scripts that source this use what it defines
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

# Build outputs (image, kernel, ssh key), cached by a hash of their inputs; git-ignored.
readonly VM_BUILD_DIR=$REPO/build/vm
# Per run: pidfiles, serial consoles, logs.
readonly VM_STATE_DIR=$STATE_DIR/vm
readonly VM_SSH_KEY=$VM_BUILD_DIR/ssh/id_ed25519
# Ansible against the VMs runs Mitogen's strategy: one Python per VM for the whole run instead
# of one per task (seconds of emulated CPU each). molecule/lvs/molecule.yml sets the same.
export ANSIBLE_STRATEGY_PLUGINS=$REPO/lab/vm/strategy_plugins ANSIBLE_STRATEGY=mitogen_linear

# The VMs live on a bridge inside a private network namespace (its own, empty iptables: the
# host's Docker rules would drop bridged traffic), joined to the host by a veth pair.
# 198.19.0.0/24: not the host's 192.0.2.0/24, the registries' 203.0.113.0/24, the Docker lab's
# 198.51.100.0/24 or molecule/default's 198.18.0.0/24.
readonly VM_NETNS=edge-vm
readonly VM_BRIDGE=br-edge-vm
readonly VM_HOST_VETH=edge-vm-host VM_NETNS_VETH=edge-vm-ns
readonly VM_SUBNET=198.19.0.0/24 VM_PREFIX=24
readonly VM_HOST_ADDRESS=198.19.0.1 # the client, the API emulator, the nodes' gateway
# The backends ("pods"): one namespace each on the bridge, lab/backend.py on port 80.
readonly VM_BACKENDS=(web1 web2)
readonly -A VM_BACKEND_ADDRESSES=([web1]=198.19.0.21 [web2]=198.19.0.22)

# The VMs of each topology (docs/lab.md): name -> address. A: separate tiers (two directors,
# two nginx real servers, LVS-DR); B: co-located (every node a director and a real server).
# seed: the 2017 setup, two directors in front of cluster nodes (docs/seed-topology.md).
readonly -A VM_TOPOLOGIES=(
  [a]="lvs-a-dir1 lvs-a-dir2 lvs-a-rs1 lvs-a-rs2" [b]="lvs-b-edge1 lvs-b-edge2"
  [seed]="seed-dir1 seed-dir2"
)
readonly -A VM_ADDRESSES=(
  [lvs-a-dir1]=198.19.0.11 [lvs-a-dir2]=198.19.0.12 [lvs-a-rs1]=198.19.0.13 [lvs-a-rs2]=198.19.0.14
  [lvs-b-edge1]=198.19.0.31 [lvs-b-edge2]=198.19.0.32
  [seed-dir1]=198.19.0.41 [seed-dir2]=198.19.0.42
)
# The seed topology's cluster nodes: not VMs but containers of the lab's cluster node image
# (lab/vm/seed_nodes.sh) on the VMs' bridge, each running the stand-in in-cluster controller
# (lab/seed_controller.py) on port 80 for the backends above.
readonly -A VM_SEED_NODES=([seed-node1]=198.19.0.51 [seed-node2]=198.19.0.52)
readonly VM_SEED_LABEL=org.example.edge.vm-seed

# One user of the VM lab at a time (make vm-lab, molecule -s lvs, vm-lab-down).
hold_vm_lock() {
  mkdir -p "$VM_STATE_DIR"
  exec 8>"$VM_STATE_DIR/vm.lock"
  flock -n 8 || {
    echo "the VM lab is busy: another vm-lab, molecule -s lvs or vm-lab-down holds" \
      "$VM_STATE_DIR/vm.lock" >&2
    exit 1
  }
}
