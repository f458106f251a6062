"""A lab "cluster node" (containers cnode1, cnode2; docs/lab.md): a Kubernetes Node reduced
to what the edge sees of one.

    cluster_node.py run --api URL    PID 1 of the container: pods, BGP, NodePorts
    cluster_node.py bgp off|on       withdraw the pod CIDR from the BGP peers, or announce it

`run` does, against the API (the emulator), what a kubelet, Calico and kube-proxy would do, by
this node's name (its hostname). It writes its Node's status as the kubelet does (the
InternalIP: its address towards the API; Ready) and reads:

- its Node: `spec.podCIDRs` and Calico's `projectcalico.org/ASNumber` annotation;
- the EndpointSlices' endpoints whose `nodeName` is this node: its pods (the pod IP, the
  Service named by `kubernetes.io/service-name`, the pod's name from `targetRef`);
- the Services' `nodePort`s.

It puts the pod CIDR's first address and every pod IP on an interface of its own (`pods`,
one end of a veth pair, as a CNI's: the host kernel may lack the dummy module; the edges
reach it only by a route to the CIDR), runs each pod as
lab/backend.py on its pod IP, announces the pod CIDR by BGP with FRR to any peer of its own
network (the edges: the lab's, or molecule's in its scenario; dynamic neighbours, as a route
reflector would accept them), and forwards
each NodePort to this node's pods of its Service with nftables DNAT, as kube-proxy does for
`externalTrafficPolicy: Local`. Then it waits for the pods; the container ends with them.

`bgp off` is the outage the lab's check (lab/bgp_withdrawal.yml) makes: a deny-all entry in
front of the export route-map, so bgpd withdraws the pod CIDR while the sessions stay up;
`bgp on` removes it. Standard library only: it runs on the node image.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ASN_ANNOTATION = "projectcalico.org/ASNumber"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
POD_INTERFACE = "pods"
NFT_TABLE = "lab_kube_proxy"
EXPORT_ROUTE_MAP = "ANNOUNCE"
# The entry `bgp off` puts in front of the route-map's permit (seq 10).
WITHDRAW_SEQUENCE = 5
BACKEND = "/srv/backend.py"
FRR_DAEMONS = Path("/etc/frr/daemons")
FRR_CONFIG = Path("/etc/frr/frr.conf")
FRR_INIT = "/usr/lib/frr/frrinit.sh"
READY_FILE = Path("/run/cluster-node.ready")
API_SECONDS = 60


@dataclass(frozen=True, order=True)
class Pod:
    name: str
    service: str
    address: str
    port: int


@dataclass(frozen=True, order=True)
class NodePort:
    node_port: int
    target_port: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class NodePlan:
    """What this node runs, from the API's objects."""

    name: str
    address: str
    # Where bgpd accepts BGP sessions from: the node's own network, where the edges are.
    peer_range: str
    asn: int
    pod_cidr: str
    pods: tuple[Pod, ...]
    node_ports: tuple[NodePort, ...]


def node_status(name: str, address: str) -> dict:
    """The kubelet's part of the Node's status: where it is, and that it is Ready."""
    return {
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        }
    }


def plan(node: dict, interface: str, slices: list[dict], services: list[dict]) -> NodePlan:
    """This node's pods, BGP and NodePorts from its Node, its address with the prefix length
    of its network (e.g. 198.51.100.31/24), the EndpointSlices and the Services."""
    name = node["metadata"]["name"]
    own = ipaddress.ip_interface(interface)
    pod_cidr = str(ipaddress.ip_network(node["spec"]["podCIDRs"][0]))
    pods = set()
    for endpoint_slice in slices:
        service = endpoint_slice["metadata"].get("labels", {}).get(SERVICE_NAME_LABEL)
        ports = endpoint_slice.get("ports") or []
        if not service or not ports:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            if endpoint.get("nodeName") != name:
                continue
            pod_name = (endpoint.get("targetRef") or {}).get("name") or service
            for pod_address in endpoint["addresses"]:
                if ipaddress.ip_address(pod_address) not in ipaddress.ip_network(pod_cidr):
                    raise ValueError(f"{name}: pod {pod_name} {pod_address} is not in {pod_cidr}")
                pods.add(Pod(pod_name, service, pod_address, int(ports[0]["port"])))
    node_ports = set()
    for service in services:
        local = sorted(pod.address for pod in pods if pod.service == service["metadata"]["name"])
        for port in service["spec"].get("ports") or []:
            if port.get("nodePort") and local:
                target = int(port.get("targetPort") or port["port"])
                node_ports.add(NodePort(int(port["nodePort"]), target, tuple(local)))
    return NodePlan(
        name=name,
        address=str(own.ip),
        peer_range=str(own.network),
        asn=int(node["metadata"]["annotations"][ASN_ANNOTATION]),
        pod_cidr=pod_cidr,
        pods=tuple(sorted(pods)),
        node_ports=tuple(sorted(node_ports)),
    )


def frr_config(node: NodePlan) -> str:
    """bgpd's configuration: the pod CIDR announced, through the export route-map only, to
    any eBGP peer of the node's network."""
    return f"""\
frr defaults traditional
hostname {node.name}
log file /var/log/frr/frr.log informational
service integrated-vtysh-config
!
ip prefix-list POD-CIDR seq 10 permit {node.pod_cidr}
!
route-map {EXPORT_ROUTE_MAP} permit 10
 match ip address prefix-list POD-CIDR
exit
!
router bgp {node.asn}
 bgp router-id {node.address}
 no bgp default ipv4-unicast
 timers bgp 3 9
 neighbor EDGES peer-group
 neighbor EDGES remote-as external
 bgp listen range {node.peer_range} peer-group EDGES
 !
 address-family ipv4 unicast
  network {node.pod_cidr}
  neighbor EDGES activate
  neighbor EDGES route-map {EXPORT_ROUTE_MAP} out
 exit-address-family
exit
!
"""


def nft_ruleset(node: NodePlan) -> str:
    """kube-proxy's NodePort DNAT, for traffic to this node's own addresses: to the one local
    pod of the Service, or to one of them at random."""
    rules = []
    for node_port in node.node_ports:
        if len(node_port.addresses) == 1:
            target = node_port.addresses[0]
        else:
            targets = ", ".join(f"{i} : {a}" for i, a in enumerate(node_port.addresses))
            target = f"numgen random mod {len(node_port.addresses)} map {{ {targets} }}"
        rules.append(
            f"    fib daddr type local tcp dport {node_port.node_port} "
            f"dnat to {target}:{node_port.target_port}"
        )
    return (
        f"table ip {NFT_TABLE}\n"
        f"delete table ip {NFT_TABLE}\n"
        f"table ip {NFT_TABLE} {{\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        + "".join(f"{rule}\n" for rule in rules)
        + "  }\n}\n"
    )


def daemons_with_bgpd(daemons: str) -> str:
    return re.sub(r"(?m)^bgpd=no$", "bgpd=yes", daemons)


def bgp_commands(announce: bool) -> list[str]:
    """vtysh arguments that withdraw the pod CIDR (a deny-all entry first in the export
    route-map) or announce it again."""
    entry = f"route-map {EXPORT_ROUTE_MAP} deny {WITHDRAW_SEQUENCE}"
    return ["-c", "configure", "-c", f"no {entry}" if announce else entry]


# I/O


def call(api: str, path: str, patch: dict | None = None) -> dict:
    request = urllib.request.Request(f"{api}{path}")
    if patch is not None:
        request.method = "PATCH"
        request.data = json.dumps(patch).encode()
        request.add_header("Content-Type", "application/merge-patch+json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def address_towards(api: str) -> str:
    """This node's address on the way to the API server: its InternalIP."""
    host = urllib.parse.urlsplit(api).hostname
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))  # UDP: nothing is sent, the kernel only picks a route
        return probe.getsockname()[0]


def interface_of(address: str) -> str:
    """The address with the prefix length it has on its interface: its network."""
    interfaces = json.loads(
        subprocess.run(
            ["ip", "-json", "-4", "address", "show", "to", f"{address}/32"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    (prefix_length,) = {
        info["prefixlen"]
        for interface in interfaces
        for info in interface["addr_info"]
        if info["local"] == address
    }
    return f"{address}/{prefix_length}"


def register(api: str, name: str) -> NodePlan:
    """Writes this node's status, then reads its plan."""
    address = address_towards(api)
    deadline = time.monotonic() + API_SECONDS
    while True:
        try:
            node = call(api, f"/api/v1/nodes/{name}/status", node_status(name, address))
            slices = call(api, "/apis/discovery.k8s.io/v1/endpointslices")["items"]
            services = call(api, "/api/v1/services")["items"]
            return plan(node, interface_of(address), slices, services)
        except OSError as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: the API at {api} did not answer: {error}") from error
            time.sleep(1)


def run_command(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True)


def ip(*argv: str) -> None:
    run_command("ip", *argv)


def set_up_pod_network(node: NodePlan) -> None:
    if not Path(f"/sys/class/net/{POD_INTERFACE}").exists():
        ip("link", "add", POD_INTERFACE, "type", "veth", "peer", "name", f"{POD_INTERFACE}-peer")
        ip("link", "set", f"{POD_INTERFACE}-peer", "up")
    network = ipaddress.ip_network(node.pod_cidr)
    ip(
        "address",
        "replace",
        f"{network.network_address + 1}/{network.prefixlen}",
        "dev",
        POD_INTERFACE,
    )
    for pod in node.pods:
        ip("address", "replace", f"{pod.address}/32", "dev", POD_INTERFACE)
    ip("link", "set", POD_INTERFACE, "up")


def start_frr(node: NodePlan) -> None:
    FRR_DAEMONS.write_text(daemons_with_bgpd(FRR_DAEMONS.read_text()))
    FRR_CONFIG.write_text(frr_config(node))
    run_command(FRR_INIT, "restart")


def start_pods(node: NodePlan) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [
                "python3",
                BACKEND,
                "--app",
                pod.service,
                "--name",
                pod.name,
                "--address",
                pod.address,
                "--port",
                str(pod.port),
            ]
        )
        for pod in node.pods
    ]


def run(api: str) -> int:
    node = register(api, socket.gethostname())
    set_up_pod_network(node)
    run_command("nft", "-f", "-", stdin=nft_ruleset(node))
    start_frr(node)
    pods = start_pods(node)
    # PID 1 gets no default signal handlers: `docker stop` must still end the node.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    READY_FILE.write_text(json.dumps({"pod_cidr": node.pod_cidr, "pods": len(node.pods)}))
    print(f"{node.name}: {len(node.pods)} pods on {node.pod_cidr}, AS {node.asn}", flush=True)
    for pod in pods:
        pod.wait()
    return 1  # a pod ended: the container ends with it, visibly


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="set the node up and run its pods")
    run_parser.add_argument("--api", required=True, help="the API server, e.g. http://host:8001")
    bgp_parser = commands.add_parser("bgp", help="announce (on) or withdraw (off) the pod CIDR")
    bgp_parser.add_argument("state", choices=["on", "off"])
    args = parser.parse_args()
    if args.command == "run":
        return run(args.api)
    run_command("vtysh", *bgp_commands(args.state == "on"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
