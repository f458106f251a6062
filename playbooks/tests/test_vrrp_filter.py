"""The keepalived role's VRRP filter (vrrp.nft), loaded into real nftables in a network
namespace of its own: VRRP from the peer reaches a listener on the node, VRRP from any
other address on the segment is counted and dropped.

The ruleset is rendered by Ansible from the role's template for edge1 of a two-node
inventory (unicast, and multicast). Two namespaces joined by a veth pair stand for the
node and its segment; the segment carries the peer's address and a stranger's.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from role_template import render_role_template

NODE, PEER, STRANGER = "192.0.2.11", "192.0.2.12", "192.0.2.99"
MULTICAST_GROUP = "224.0.0.18"
INTERFACE = "eth0"
VRRP_PROTOCOL = 112
LISTEN_SECONDS = 3


def render_filter(directory: Path, unicast: bool) -> Path:
    """vrrp.nft of edge1, rendered with the role's defaults and vars for a two-node group."""
    hosts = {
        "edge1": {"keepalived_node_address": f"{NODE}/24", "keepalived_priority": 150},
        "edge2": {"keepalived_node_address": f"{PEER}/24", "keepalived_priority": 100},
    }
    (directory / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"edge": {"hosts": hosts}}}})
    )
    instance = {"name": "VI_EDGE", "interface": INTERFACE, "virtual_router_id": 51}
    instance["virtual_ipaddresses"] = ["192.0.2.100"]
    return render_role_template(
        "keepalived",
        "etc/edge-vrrp/vrrp.nft.j2",
        directory / "vrrp.nft",
        {"keepalived_instances": [instance], "keepalived_unicast": unicast},
        inventory=str(directory / "hosts.yml"),
        host="edge1",
        validate="nft --check --file %s",
    )


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


@pytest.fixture
def segment():
    """Namespaces (node, segment) joined by a veth pair: the node's end is INTERFACE with
    NODE, the segment's carries PEER and STRANGER."""
    node, other = f"edgevrrp-node-{os.getpid()}", f"edgevrrp-seg-{os.getpid()}"
    run("ip", "netns", "add", node)
    run("ip", "netns", "add", other)
    try:
        run("ip", "-n", node, "link", "add", INTERFACE, "type", "veth", "peer", "seg0")
        run("ip", "-n", node, "link", "set", "seg0", "netns", other)
        for namespace, device, addresses in (
            (node, INTERFACE, [NODE]),
            (other, "seg0", [PEER, STRANGER]),
        ):
            for address in addresses:
                run("ip", "-n", namespace, "address", "add", f"{address}/24", "dev", device)
            run("ip", "-n", namespace, "link", "set", device, "up")
            run("ip", "-n", namespace, "route", "add", "224.0.0.0/4", "dev", device)
        yield node, other
    finally:
        subprocess.run(["ip", "netns", "del", node], check=False)
        subprocess.run(["ip", "netns", "del", other], check=False)


# Runs inside a namespace: prints the source of every VRRP packet it receives (as keepalived
# reads them, through a raw socket of protocol 112; joined to the VRRP group on INTERFACE).
LISTENER = textwrap.dedent(
    f"""
    import socket, struct, sys, time
    listener = socket.socket(socket.AF_INET, socket.SOCK_RAW, {VRRP_PROTOCOL})
    membership = struct.pack("4s4s", socket.inet_aton("{MULTICAST_GROUP}"),
                             socket.inet_aton("{NODE}"))
    listener.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    listener.settimeout(0.2)
    print("ready", flush=True)
    deadline = time.monotonic() + {LISTEN_SECONDS}
    while time.monotonic() < deadline:
        try:
            packet, (source, _) = listener.recvfrom(2048)
        except socket.timeout:
            continue
        print(source, flush=True)
    """
)

# Runs inside a namespace: one VRRP packet from argv[1] to argv[2].
SENDER = textwrap.dedent(
    f"""
    import socket, sys
    sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, {VRRP_PROTOCOL})
    sender.bind((sys.argv[1], 0))
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
    sender.sendto(bytes.fromhex("3133ff01000a00000000000000"), (sys.argv[2], 0))
    """
)


def dropped(namespace: str) -> int:
    listing = json.loads(
        run("ip", "netns", "exec", namespace, "nft", "-j", "list", "counter", "inet", "edge_vrrp",
            "dropped")
    )  # fmt: skip
    (counter,) = (item["counter"] for item in listing["nftables"] if "counter" in item)
    return counter["packets"]


@pytest.mark.parametrize("unicast", [True, False], ids=["unicast", "multicast"])
def test_only_the_peers_vrrp_reaches_the_node(segment, tmp_path, unicast):
    node, other = segment
    ruleset = render_filter(tmp_path, unicast)
    run("ip", "netns", "exec", node, "nft", "-f", str(ruleset))
    run("ip", "netns", "exec", node, "nft", "-f", str(ruleset))  # a reload replaces the table
    destination = NODE if unicast else MULTICAST_GROUP
    listener = subprocess.Popen(
        ["ip", "netns", "exec", node, sys.executable, "-c", LISTENER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout.readline().strip() == "ready"
        for source in (PEER, STRANGER, STRANGER):
            run("ip", "netns", "exec", other, sys.executable, "-c", SENDER, source, destination)
        received, _ = listener.communicate(timeout=LISTEN_SECONDS + 30)
    finally:
        listener.kill()
    assert received.split() == [PEER]
    assert dropped(node) == 2


def test_the_filter_names_only_the_peers(tmp_path):
    ruleset = render_filter(tmp_path, unicast=True).read_text()
    assert f"elements = {{ {PEER} }}" in ruleset
    assert NODE not in ruleset.split("set peers")[1].split("}")[0]  # not its own peer
    assert f"ip daddr {NODE} meta l4proto {VRRP_PROTOCOL} accept" in ruleset
