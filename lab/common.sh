# Sourced by the lab scripts: names and addresses shared by the lab and molecule cleanup.
# shellcheck shell=bash disable=SC2034 # the scripts that source this use what it defines
readonly DOCKER=/usr/bin/docker # Debian's CLI; /usr/local/bin/docker may be an unrelated one
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly STATE_DIR=$REPO/.lab # pidfiles, logs, locks (git-ignored)
readonly VENV_BIN=$REPO/.venv/bin
readonly NODE_IMAGE=edge-node
readonly CLUSTER_NODE_IMAGE=edge-cluster-node # lab/cluster_image.sh

readonly LAB_NETWORK=edge-lab
readonly LAB_SUBNET=198.51.100.0/24
readonly LAB_GATEWAY=198.51.100.1
readonly LAB_VIP=198.51.100.100
readonly EMULATOR_PORT=8001
readonly LAB_EDGE_NODES=(edge1 edge2) LAB_BACKENDS=(web1 web2) # container names = hostnames
# Kubernetes Nodes with their pods (lab/cluster_node.py, lab/manifests/cluster-nodes.yaml).
readonly LAB_CLUSTER_NODES=(cnode1 cnode2)
readonly -A LAB_ADDRESSES=(
  [edge1]=198.51.100.11 [edge2]=198.51.100.12 [web1]=198.51.100.21 [web2]=198.51.100.22
  [cnode1]=198.51.100.31 [cnode2]=198.51.100.32
)
# The cluster nodes' pod networks are in it; the edges reach them only by learned routes.
readonly LAB_POD_RANGE=198.19.0.0/16

# Flags that let systemd run as PID 1 in a container on these hosts (--privileged fails here:
# "unable to apply caps"). NET_ADMIN/NET_RAW/NET_BROADCAST: keepalived adds the VIP and sends
# VRRP and gratuitous ARP.
readonly SYSTEMD_NODE_FLAGS=(
  --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add NET_RAW --cap-add NET_BROADCAST
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw
  --tmpfs /run --tmpfs /run/lock --tmpfs /tmp
  --stop-signal SIGRTMIN+3
)

log() { printf '%s %s\n' "$(date +%T)" "$*"; }

# Labels mark what the lab and molecule create, so cleanup removes exactly that.
readonly LAB_LABEL=org.example.edge.lab
readonly MOLECULE_LABEL=org.example.edge.molecule
readonly LAB_KUBECONFIG=$REPO/inventory/lab/kubeconfig

# One user of the lab at a time: up.sh, down.sh (and a drill, if it takes the same lock) would
# otherwise reconfigure or remove nodes under each other.
hold_lab_lock() {
  mkdir -p "$STATE_DIR"
  exec 8>"$STATE_DIR/lab.lock"
  flock -n 8 || {
    echo "the lab is busy: another make lab, lab-down or drill holds $STATE_DIR/lab.lock" >&2
    exit 1
  }
}

# BGP mode (`make lab VIP_MODE=bgp`, docs/bgp.md "The lab"): the edges announce the VIP to an
# FRR router container, which sits between them and a client network of its own; the lab's
# requests come from a client container behind it. The router's ASN and address are the
# edges' frr_upstream_peers in lab/bgp-mode.yml.
readonly LAB_VIP_MODES=(vrrp bgp)
readonly LAB_VIP_MODE_FILE=$STATE_DIR/vip-mode # the mode the lab was built in
readonly LAB_CLIENT_NETWORK=edge-lab-client
readonly LAB_CLIENT_SUBNET=198.18.100.0/24
readonly LAB_CLIENT_GATEWAY=198.18.100.1
readonly LAB_ROUTER=router LAB_CLIENT=client
readonly LAB_ROUTER_ADDRESS=198.51.100.2 LAB_ROUTER_CLIENT_ADDRESS=198.18.100.2
readonly LAB_CLIENT_ADDRESS=198.18.100.10
readonly LAB_ROUTER_ASN=64500
