#!/usr/bin/env bash
# `make lab`: the Docker lab on 198.51.100.0/24 (see docs/lab.md), then site.yml, then
# requests through the VIP, then the BGP check (lab/bgp_withdrawal.yml). Safe to run again:
# what exists and runs is reused, so a second run is quick and its site.yml run reports
# changed=0. `make lab-down` removes it all.
#
#   lab/up.sh [vrrp|bgp]    the VIP mode (default vrrp); bgp: the edges announce the VIP to a
#                           router container and the requests come from a client behind it
#                           (lab/router.sh, docs/bgp.md "The lab")
set -euo pipefail
source "$(dirname "$0")/common.sh"
export PATH=$VENV_BIN:$PATH ANSIBLE_CONFIG=$REPO/ansible.cfg

readonly VIP_MODE=${1:-vrrp}
[[ " ${LAB_VIP_MODES[*]} " == *" $VIP_MODE "* ]] || {
  echo "lab/up.sh: VIP mode '$VIP_MODE' is none of ${LAB_VIP_MODES[*]}" >&2
  exit 2
}
if [[ $VIP_MODE == bgp ]]; then
  readonly MODE_VARS=(-e @lab/bgp-mode.yml) CLIENT=("$REPO/lab/router.sh" client)
else
  readonly MODE_VARS=() CLIENT=()
fi

readonly BOOT_SECONDS=60 VIP_SECONDS=60
readonly UNKNOWN_HOST=unknown.example
# The apps of lab/manifests/cluster-nodes.yaml: api in the endpoints mode (pod IPs, by the
# routes learned by BGP), shop in the nodeport mode (its annotation).
readonly ROUTED_HOST=api.lab.example NODEPORT_HOST=shop.lab.example
# The HTTPRoute of lab/manifests/gateway.yaml, and its Gateway.
readonly GATEWAY_HOST=gw.lab.example GATEWAY=default/edge
readonly GATEWAY_COLUMNS='NAMESPACE:.metadata.namespace,NAME:.metadata.name,CLASS:.spec.gatewayClassName,ADDRESS:.status.addresses[*].value,PROGRAMMED:.status.conditions[?(@.type=="Programmed")].status'

ensure_network() {
  local subnet
  if subnet=$("$DOCKER" network inspect -f '{{(index .IPAM.Config 0).Subnet}}' "$LAB_NETWORK" \
    2>/dev/null); then
    [[ $subnet == "$LAB_SUBNET" ]] || {
      echo "network $LAB_NETWORK exists with subnet $subnet, not $LAB_SUBNET" >&2
      exit 1
    }
    return
  fi
  # The bridge interface gets the network's name, so `tcpdump -i edge-lab` shows VRRP.
  "$DOCKER" network create --driver bridge --subnet "$LAB_SUBNET" --gateway "$LAB_GATEWAY" \
    -o com.docker.network.bridge.name="$LAB_NETWORK" --label "$LAB_LABEL=1" \
    "$LAB_NETWORK" >/dev/null
  log "network $LAB_NETWORK $LAB_SUBNET created"
}

# ensure_container NAME ADDRESS IMAGE DOCKER_RUN_ARGS...: reuse NAME if it exists, else
# create it (the arguments name IMAGE:latest too).
ensure_container() {
  local name=$1 address=$2 image=$3 state
  shift 3
  if state=$("$DOCKER" inspect -f '{{.State.Running}} {{.Image}}' "$name" 2>/dev/null); then
    [[ $state == true* ]] || "$DOCKER" start "$name" >/dev/null
    if [[ ${state#* } == "$("$DOCKER" image inspect -f '{{.Id}}' "$image:latest")" ]]; then
      log "$name $address: reusing"
    else
      log "$name $address: reusing (an older $image image; make lab-down, then make lab renews it)"
    fi
    return
  fi
  "$DOCKER" run -d --name "$name" --hostname "$name" --label "$LAB_LABEL=1" \
    --network "$LAB_NETWORK" --ip "$address" "$@" >/dev/null
  log "$name $address: started"
}

wait_for_systemd() {
  local name=$1 state='' deadline=$((SECONDS + BOOT_SECONDS))
  # Right after `docker run` systemctl finds no bus yet and fails at once; then --wait blocks
  # until the boot is over and prints running or degraded.
  while [[ -z $state ]] && ((SECONDS < deadline)); do
    state=$(timeout "$BOOT_SECONDS" "$DOCKER" exec "$name" systemctl is-system-running --wait \
      2>/dev/null) || true
    [[ -n $state ]] || sleep 0.2
  done
  [[ $state == running ]] && return
  echo "$name: systemd is '${state:-not answering}' after ${BOOT_SECONDS}s; failed units:" >&2
  "$DOCKER" exec "$name" systemctl --failed --no-legend >&2 || true
  exit 1
}

# request HOST: one request through the VIP; prints "<status> <what the body says>": its first
# line, or the <title> of an HTML page (nginx's 404). "000" when nothing answered.
request() {
  { "${CLIENT[@]}" curl -s -m 3 -H "Host: $1" -w '\n%{http_code}' "http://$LAB_VIP/" || true; } |
    awk '{ lines[NR] = $0 }
      END {
        body = lines[1]
        for (i = 1; i < NR; i++) if (match(lines[i], /<title>[^<]*<\/title>/)) {
          body = substr(lines[i], RSTART + 7, RLENGTH - 15)
          break
        }
        print lines[NR], (NR > 1 ? body : "")
      }'
}

check_through_vip() {
  local deadline=$((SECONDS + VIP_SECONDS)) web1 web2 gateway unknown routed nodeport
  # The agent renders the routes right after its first start, and the BGP sessions come up
  # within seconds: wait for them, not forever.
  until [[ $(request web1) == "200 web1 "* && $(request "$ROUTED_HOST") == "200 api "* ]]; do
    ((SECONDS < deadline)) || break
    sleep 0.5
  done
  web1=$(request web1) web2=$(request web2) unknown=$(request "$UNKNOWN_HOST")
  gateway=$(request "$GATEWAY_HOST")
  routed=$(request "$ROUTED_HOST") nodeport=$(request "$NODEPORT_HOST")
  printf '\nThrough the VIP http://%s/\n' "$LAB_VIP"
  printf '  Host: %-16s -> %s\n' web1 "$web1" web2 "$web2" "$GATEWAY_HOST" "$gateway" \
    "$UNKNOWN_HOST" "$unknown" "$ROUTED_HOST" "$routed  (endpoints mode: a pod IP, by BGP)" \
    "$NODEPORT_HOST" "$nodeport  (nodeport mode: a Node's NodePort)"
  [[ $web1 == "200 web1 "* && $web2 == "200 web2 "* && $gateway == "200 web2 "* &&
    $unknown == 404* && $routed == "200 api "* && $nodeport == "200 shop "* ]] || {
    echo "expected 200 from web1, 200 from web2 (Ingress and HTTPRoute), 404, and 200 from" \
      "the cluster nodes' api and shop; see docs/lab.md, Troubleshooting" >&2
    exit 1
  }
}

# BGP mode: new connections from the client reach every edge (the router's ECMP), as the
# X-Edge-Node header of the answers says.
check_every_edge_answers() {
  local tries=32 answered edge missing=()
  answered=$(for ((i = 0; i < tries; i++)); do
    { "${CLIENT[@]}" curl -s -m 3 -o /dev/null -D - -H 'Host: web1' "http://$LAB_VIP/" || true; } |
      sed -n 's/^X-Edge-Node: *\([^[:space:]]*\).*/\1/ip'
  done | sort | uniq -c)
  printf '\n%d new connections from %s (%s) through %s, by the edge that answered:\n%s\n' \
    "$tries" "$LAB_CLIENT" "$LAB_CLIENT_ADDRESS" "$LAB_ROUTER" "$answered"
  for edge in "${LAB_EDGE_NODES[@]}"; do
    grep -qw "$edge" <<<"$answered" || missing+=("$edge")
  done
  ((${#missing[@]} == 0)) || {
    echo "no answer from ${missing[*]}: see docs/bgp.md, \"The lab\" (vtysh on $LAB_ROUTER)" >&2
    exit 1
  }
}

# The Gateway's status.addresses, as kubectl prints them: the VIP, once the holder's agent
# wrote the status (it writes after its sync, so wait for it, not forever).
check_gateway_status() {
  local deadline=$((SECONDS + VIP_SECONDS)) addresses
  local kubectl=("$VENV_BIN/kubectl" --kubeconfig "$LAB_KUBECONFIG")
  until addresses=$("${kubectl[@]}" get gateway -n "${GATEWAY%/*}" "${GATEWAY#*/}" \
    -o 'jsonpath={.status.addresses[*].value}') && [[ " $addresses " == *" $LAB_VIP "* ]]; do
    ((SECONDS < deadline)) || break
    sleep 0.5
  done
  printf '\n'
  "${kubectl[@]}" get gateway -A -o "custom-columns=$GATEWAY_COLUMNS"
  [[ " $addresses " == *" $LAB_VIP "* ]] || {
    echo "expected $LAB_VIP in status.addresses of Gateway $GATEWAY, got '$addresses'" >&2
    exit 1
  }
}

hold_lab_lock
# One mode per lab: the edges' roles do not move a converged node from one mode to the other.
built_mode=$(cat "$LAB_VIP_MODE_FILE" 2>/dev/null || echo vrrp)
if [[ $built_mode != "$VIP_MODE" ]] && "$DOCKER" inspect "${LAB_EDGE_NODES[0]}" >/dev/null 2>&1; then
  echo "the lab runs in VIP mode $built_mode; make lab-down first to build it in $VIP_MODE" >&2
  exit 1
fi
echo "$VIP_MODE" >"$LAB_VIP_MODE_FILE"
started=$SECONDS
"$REPO/lab/cluster_image.sh" # builds the edge node image first
ensure_network
"$REPO/lab/emulator.sh" start lab "$LAB_GATEWAY" "$REPO/lab/manifests" "$LAB_KUBECONFIG"
for name in "${LAB_BACKENDS[@]}"; do
  ensure_container "$name" "${LAB_ADDRESSES[$name]}" "$NODE_IMAGE" \
    -v "$REPO/lab/backend.py:/srv/backend.py:ro" \
    "$NODE_IMAGE:latest" python3 /srv/backend.py --app "$name" --version v1
done
# The cluster nodes read their pods, podCIDR and NodePorts from the emulator (its address is
# the lab network's gateway).
cluster_nodes=()
for name in "${LAB_CLUSTER_NODES[@]}"; do
  cluster_nodes+=("$name=${LAB_ADDRESSES[$name]}")
done
"$REPO/lab/cluster_nodes.sh" up "$LAB_NETWORK" "$LAB_LABEL" \
  "http://$LAB_GATEWAY:$EMULATOR_PORT" "" "${cluster_nodes[@]}"
[[ $VIP_MODE != bgp ]] || "$REPO/lab/router.sh" up
# ARP for the VIP only from its holder (keepalived_vip_on_lo: the VIP is on lo of both nodes);
# /proc/sys is read-only inside, so these come with the container.
for name in "${LAB_EDGE_NODES[@]}"; do
  ensure_container "$name" "${LAB_ADDRESSES[$name]}" "$NODE_IMAGE" "${SYSTEMD_NODE_FLAGS[@]}" \
    --sysctl net.ipv4.conf.all.arp_ignore=1 --sysctl net.ipv4.conf.all.arp_announce=2 \
    "$NODE_IMAGE:latest"
done
for name in "${LAB_EDGE_NODES[@]}"; do
  wait_for_systemd "$name"
done
"$REPO/lab/cluster_nodes.sh" edge "${LAB_EDGE_NODES[@]}"
[[ $VIP_MODE != bgp ]] || "$REPO/lab/router.sh" edge "${LAB_EDGE_NODES[@]}"
log "lab containers ready after $((SECONDS - started)) s; running site.yml"

cd "$REPO"
ansible-playbook -i inventory/lab "${MODE_VARS[@]}" edgeops.edge.site
check_through_vip
[[ $VIP_MODE != bgp ]] || check_every_edge_answers
check_gateway_status
ansible-playbook -i inventory/lab "${MODE_VARS[@]}" lab/bgp_withdrawal.yml
log "lab up ($VIP_MODE) in $((SECONDS - started)) s. kubectl: .venv/bin/kubectl --kubeconfig inventory/lab/kubeconfig get ingress -A -o custom-columns=NAME:.metadata.name,HOSTS:.spec.rules[*].host,ADDRESS:.status.loadBalancer.ingress[*].ip"
