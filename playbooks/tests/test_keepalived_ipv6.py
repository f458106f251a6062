"""IPv6 VIPs in VRRP mode, with real keepalived and nftables: a node with an IPv4 and an IPv6
VIP group (keepalived_instances entries of one family each) runs one VRRP instance per family,
the IPv6 one over IPv6 unicast between the nodes' keepalived_node_address6; the role's VRRP
filter lets both families' adverts through from the peer; the leave mark moves both VIPs to
the peer and back.

keepalived.conf and vrrp.nft are rendered by Ansible from the role's templates for each node of
a two-node inventory (the node checks off: no nginx or agent here). Two network namespaces
joined by a veth pair stand for the nodes and their dual-stack segment.
"""

import json
import os
from pathlib import Path

import pytest
import yaml
from keepalived_netns import INTERFACE, keepalived_nodes, run, wait_for_holders
from role_template import Rendering, render_role_templates

NODES = {
    "edge1": ("198.18.10.11", "2001:db8:10::11", 150),
    "edge2": ("198.18.10.12", "2001:db8:10::12", 100),
}
VIP, VIP6 = "198.18.10.100", "2001:db8:10::100"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def render(directory: Path) -> dict[str, tuple[Path, Path]]:
    """Each node's VRRP filter (checked by nft) and keepalived.conf in directory/<host>, its
    leave mark beside them, all in one ansible-playbook run: {host: (vrrp.nft,
    keepalived.conf)}."""
    hosts = {
        name: {
            "keepalived_node_address": f"{address}/24",
            "keepalived_node_address6": f"{address6}/64",
            "keepalived_priority": priority,
        }
        for name, (address, address6, priority) in NODES.items()
    }
    inventory = directory / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"edge": {"hosts": hosts}}}}))
    instances = [
        {
            "name": name,
            "interface": INTERFACE,
            "virtual_router_id": 51,
            "virtual_ipaddresses": [vip],
        }
        for name, vip in (("VI_EDGE", VIP), ("VI_EDGE6", VIP6))
    ]
    settings = {
        "keepalived_instances": instances,
        "keepalived_advert_int": 0.1,
        "keepalived_check_nginx": False,
        "keepalived_check_agent": False,
        "keepalived_script_user": "root",
    }
    templates = (
        ("etc/edge-vrrp/vrrp.nft.j2", "nft --check --file %s"),
        ("etc/keepalived/keepalived.conf.j2", None),
    )
    renderings = []
    for host in NODES:
        (directory / host).mkdir()
        host_settings = {**settings, "keepalived_leave_file": str(directory / host / "leave")}
        for template, validate in templates:
            destination = directory / host / Path(template).stem
            renderings.append(Rendering(template, destination, host_settings, host, validate))
    rendered = iter(render_role_templates("keepalived", renderings, inventory=str(inventory)))
    return {host: (next(rendered), next(rendered)) for host in NODES}


@pytest.fixture
def nodes(tmp_path):
    """Each node's namespace (INTERFACE with both addresses), its VRRP filter loaded,
    running keepalived: {host: (namespace, directory)}."""
    rendered = render(tmp_path)

    def configure(host: str, namespace: str, directory: Path) -> Path:
        address, address6, _ = NODES[host]
        run("ip", "-n", namespace, "address", "add", f"{address}/24", "dev", INTERFACE)
        # nodad: usable at once as VRRP's source, not after duplicate address detection.
        run("ip", "-n", namespace, "address", "add", f"{address6}/64", "dev", INTERFACE, "nodad")
        ruleset, config = rendered[host]
        run("ip", "netns", "exec", namespace, "nft", "--file", str(ruleset))
        return config

    with keepalived_nodes(tmp_path, "edgevrrp6", list(NODES), configure) as found:
        yield found


def dropped(namespace: str) -> int:
    """Packets the VRRP filter dropped (counter `dropped`)."""
    listing = json.loads(
        run(
            "ip",
            "netns",
            "exec",
            namespace,
            "nft",
            "-j",
            "list",
            "counter",
            "inet",
            "edge_vrrp",
            "dropped",
        )
    )
    return next(item["counter"]["packets"] for item in listing["nftables"] if "counter" in item)


def test_an_ipv6_vip_moves_with_its_own_vrrp_instance(nodes):
    wait_for_holders(nodes, (VIP, VIP6), {"edge1"})
    # keepalived.conf: one instance per family, the IPv6 one between the IPv6 addresses.
    config = (nodes["edge1"][1] / "keepalived.conf").read_text()
    instance6 = config.split("vrrp_instance VI_EDGE6 {", 1)[1].split("\n}", 1)[0]
    assert f"unicast_src_ip {NODES['edge1'][1]}" in instance6
    assert f"{VIP6}/64 dev {INTERFACE}" in instance6 and VIP not in instance6

    leave = nodes["edge1"][1] / "leave"
    leave.write_text("1\n")
    wait_for_holders(nodes, (VIP, VIP6), {"edge2"})
    leave.write_text("0\n")
    wait_for_holders(nodes, (VIP, VIP6), {"edge1"})
    # The peers' adverts of both families passed the filter: nothing of theirs was dropped.
    assert {host: dropped(namespace) for host, (namespace, _) in nodes.items()} == {
        "edge1": 0,
        "edge2": 0,
    }
