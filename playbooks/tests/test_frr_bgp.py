"""The frr role's frr.conf, run by real FRR (zebra and bgpd) in a network namespace of its
own, peering with a second FRR that plays a Calico-like cluster node: the edge learns and
installs the pod and service routes the node announces, refuses a prefix outside the
configured ranges and one longer than a range allows, and removes a route the node withdraws.

frr.conf is rendered by Ansible from the role's template (and checked by `vtysh --dryrun` as
the role does). Each namespace's daemons run with their own pathspace (-N: sockets and pid
files in /var/run/frr/<name>/), so they never meet the host's FRR; the configuration goes in
through vtysh, as `vtysh -b` would load it at boot.
"""

import json
import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from role_template import render_role_template

EDGE_ADDRESS, NODE_ADDRESS = "198.51.100.1", "198.51.100.2"
EDGE_ASN, NODE_ASN = 64600, 64512
POD_RANGE, SERVICE_RANGE = "198.18.0.0/16", "198.19.0.0/16"
POD_BLOCK = "198.18.1.0/26"  # a Calico IPAM block of the node
SERVICE_ROUTE = "198.19.0.10/32"  # a ClusterIP announced with serviceClusterIPs
OUTSIDE = "192.0.2.0/24"  # not the cluster's: refused
TOO_LONG = "198.18.2.7/32"  # inside the pod range, longer than its le 26: refused
FRR_DAEMONS = Path("/usr/lib/frr")
PATHSPACES = Path("/var/run/frr")
# A busy machine: session setup and route installation take seconds, not this long.
CONVERGENCE_SECONDS = 120

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="network namespaces need root (lab/host-packages.sh installs frr)"
)


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


def render_edge_config(directory: Path) -> Path:
    """frr.conf of the edge as the role renders it for one peer, the cluster node."""
    task_vars = {
        "frr_asn": EDGE_ASN,
        "frr_router_id": EDGE_ADDRESS,
        "frr_peers": [{"address": NODE_ADDRESS, "asn": NODE_ASN, "description": "k8s-node-1"}],
        "frr_import_pod_cidrs": [{"cidr": POD_RANGE, "le": 26}],
        "frr_import_service_cidrs": [{"cidr": SERVICE_RANGE}],
    }
    (directory / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"edge": {"hosts": {"edge1": {}}}}}})
    )
    return render_role_template(
        "frr",
        "etc/frr/frr.conf.j2",
        directory / "frr.conf",
        task_vars,
        inventory=str(directory / "hosts.yml"),
        host="edge1",
        validate="vtysh --dryrun --inputfile %s",
    )


# The cluster node as Calico's BIRD would announce: its pod block and a service address, and
# (to be refused) a foreign prefix and a too-specific pod address.
NODE_CONFIG = textwrap.dedent(f"""\
    router bgp {NODE_ASN}
     bgp router-id {NODE_ADDRESS}
     no bgp ebgp-requires-policy
     no bgp network import-check
     timers bgp 3 9
     neighbor {EDGE_ADDRESS} remote-as {EDGE_ASN}
     address-family ipv4 unicast
      network {POD_BLOCK}
      network {SERVICE_ROUTE}
      network {OUTSIDE}
      network {TOO_LONG}
     exit-address-family
    exit
    """)


class Speaker:
    """zebra and bgpd (and bfdd with `bfd`) in network namespace `name`, with pathspace `name`."""

    def __init__(self, name: str, logs: Path, *, bfd: bool = False):
        self.name = name
        self.daemons = [("zebra", "zserv.api"), ("bgpd", "bgpd.vty")]
        if bfd:
            self.daemons.append(("bfdd", "bfdd.vty"))
        self.pathspace = PATHSPACES / name
        self.logs = logs
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        self.pathspace.mkdir(parents=True)
        shutil.chown(self.pathspace, "frr", "frr")
        for daemon, socket in self.daemons:
            log = (self.logs / f"{self.name}-{daemon}.log").open("w")
            self.processes.append(
                subprocess.Popen(
                    [
                        *("ip", "netns", "exec", self.name, str(FRR_DAEMONS / daemon)),
                        *("-N", self.name, "-f", "/dev/null"),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            # bgpd connects to zebra's socket: zebra first, and listening.
            wait_for(lambda socket=socket: (self.pathspace / socket).exists(), f"{daemon} up")

    def configure(self, config: Path) -> None:
        run("vtysh", "-N", self.name, "--inputfile", str(config))

    def vtysh(self, *commands: str) -> str:
        return run("vtysh", "-N", self.name, *(part for c in commands for part in ("-c", c)))

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.pathspace, ignore_errors=True)


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + CONVERGENCE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"not within {CONVERGENCE_SECONDS} s: {what}"
        time.sleep(0.2)


def kernel_routes(namespace: str) -> set[str]:
    """The destinations of the routes bgpd installed (via zebra) in the namespace's table."""
    routes = json.loads(run("ip", "-n", namespace, "-json", "route", "show", "proto", "bgp"))
    return {r["dst"] if "/" in r["dst"] else f"{r['dst']}/32" for r in routes}


def edge_received(edge: Speaker) -> set[str]:
    """What the edge received from the node, before its import filter."""
    received = edge.vtysh(f"show bgp ipv4 unicast neighbors {NODE_ADDRESS} received-routes json")
    return set(json.loads(received).get("receivedRoutes", {}))


@pytest.fixture
def speakers(tmp_path):
    """The edge and the cluster node, each in its namespace, joined by a veth pair."""
    edge = Speaker(f"edgebgp-edge-{os.getpid()}", tmp_path)
    node = Speaker(f"edgebgp-node-{os.getpid()}", tmp_path)
    run("ip", "netns", "add", edge.name)
    run("ip", "netns", "add", node.name)
    try:
        run("ip", "-n", edge.name, "link", "add", "eth0", "type", "veth", "peer", "eth1")
        run("ip", "-n", edge.name, "link", "set", "eth1", "netns", node.name)
        ends = ((edge, "eth0", EDGE_ADDRESS), (node, "eth1", NODE_ADDRESS))
        for speaker, device, address in ends:
            run("ip", "-n", speaker.name, "address", "add", f"{address}/24", "dev", device)
            run("ip", "-n", speaker.name, "link", "set", device, "up")
            run("ip", "-n", speaker.name, "link", "set", "lo", "up")
        yield edge, node
    finally:
        for speaker in (edge, node):
            speaker.stop()
            subprocess.run(["ip", "netns", "del", speaker.name], check=False)


def test_the_edge_installs_only_the_cluster_routes_it_is_told_to_accept(speakers, tmp_path):
    edge, node = speakers
    edge_config = render_edge_config(tmp_path)
    (tmp_path / "node.conf").write_text(NODE_CONFIG)
    for speaker, config in ((edge, edge_config), (node, tmp_path / "node.conf")):
        speaker.start()
        speaker.configure(config)

    # soft-reconfiguration inbound (the role's) keeps what the node sent, refused or not.
    wait_for(
        lambda: edge_received(edge) == {POD_BLOCK, SERVICE_ROUTE, OUTSIDE, TOO_LONG},
        "the node's four announcements received",
    )
    wait_for(lambda: {POD_BLOCK, SERVICE_ROUTE} <= kernel_routes(edge.name), "routes installed")
    assert kernel_routes(edge.name) == {POD_BLOCK, SERVICE_ROUTE}
    rib = json.loads(edge.vtysh("show bgp ipv4 unicast json"))["routes"]
    assert set(rib) == {POD_BLOCK, SERVICE_ROUTE}
    pod_route = run("ip", "-n", edge.name, "route", "get", "198.18.1.5")
    assert f"via {NODE_ADDRESS} dev eth0" in pod_route
    # The edge announces nothing: the node learned no route from it.
    node_rib = json.loads(node.vtysh("show bgp ipv4 unicast json"))["routes"]
    assert all(path.get("peerId") != EDGE_ADDRESS for paths in node_rib.values() for path in paths)

    node.vtysh(
        "configure terminal",
        f"router bgp {NODE_ASN}",
        "address-family ipv4 unicast",
        f"no network {POD_BLOCK}",
    )
    wait_for(lambda: POD_BLOCK not in kernel_routes(edge.name), "pod route withdrawn")
    assert kernel_routes(edge.name) == {SERVICE_ROUTE}
