"""The keepalived role's leave mark (keepalived_leave_file), with real keepalived daemons:
while a node's mark says 1 its VRRP instances are in FAULT, so its VIPs move to the peer and
it takes none; back at 0 it is a candidate again and, preempting, takes them back.

keepalived.conf is rendered by Ansible from the role's template for each node of a two-node
inventory (unicast, the node checks off: no nginx or agent here). Two network namespaces
joined by a veth pair stand for the nodes and their segment.
"""

import time
from pathlib import Path

import pytest
import yaml
from keepalived_netns import INTERFACE, holders, keepalived_nodes, run, wait_for_holders
from role_template import Rendering, render_role_templates

NODES = {"edge1": ("198.18.10.11", 150), "edge2": ("198.18.10.12", 100)}
VIP = "198.18.10.100"


def render_configs(directory: Path) -> dict[str, Path]:
    """keepalived.conf of each node in directory/<host>, its leave mark beside it, all in one
    ansible-playbook run."""
    hosts = {
        name: {"keepalived_node_address": f"{address}/24", "keepalived_priority": priority}
        for name, (address, priority) in NODES.items()
    }
    inventory = directory / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"edge": {"hosts": hosts}}}}))
    instance = {"name": "VI_EDGE", "interface": INTERFACE, "virtual_router_id": 51}
    instance["virtual_ipaddresses"] = [VIP]
    settings = {
        "keepalived_instances": [instance],
        "keepalived_advert_int": 0.1,
        "keepalived_vrrp_version": 3,
        "keepalived_check_nginx": False,
        "keepalived_check_agent": False,
        "keepalived_script_user": "root",
    }
    renderings = []
    for host in NODES:
        (directory / host).mkdir()
        host_settings = {**settings, "keepalived_leave_file": str(directory / host / "leave")}
        destination = directory / host / "keepalived.conf"
        renderings.append(
            Rendering("etc/keepalived/keepalived.conf.j2", destination, host_settings, host)
        )
    configs = render_role_templates("keepalived", renderings, inventory=str(inventory))
    return dict(zip(NODES, configs, strict=True))


@pytest.fixture
def nodes(tmp_path):
    """Each node's namespace (INTERFACE with its address) running keepalived with its
    rendered configuration: {host: (namespace, directory)}."""
    configs = render_configs(tmp_path)

    def configure(host: str, namespace: str, directory: Path) -> Path:
        run("ip", "-n", namespace, "address", "add", f"{NODES[host][0]}/24", "dev", INTERFACE)
        return configs[host]

    with keepalived_nodes(tmp_path, "edgeleave", list(NODES), configure) as found:
        yield found


def test_the_leave_mark_moves_the_vips_away_and_back(nodes):
    wait_for_holders(nodes, (VIP,), {"edge1"})
    leave = nodes["edge1"][1] / "leave"
    assert leave.read_text().strip() == "0"  # created by keepalived (init_file)

    leave.write_text("1\n")
    wait_for_holders(nodes, (VIP,), {"edge2"})
    # Left, it takes nothing back while the mark holds, though its priority is the higher.
    time.sleep(1)
    assert holders(nodes, VIP) == {"edge2"}

    leave.write_text("0\n")
    wait_for_holders(nodes, (VIP,), {"edge1"})


def test_a_backup_that_left_does_not_take_over(nodes):
    wait_for_holders(nodes, (VIP,), {"edge1"})
    (nodes["edge2"][1] / "leave").write_text("1\n")
    (nodes["edge1"][1] / "leave").write_text("1\n")
    # Both left: nobody holds the VIP (edge.yml never leaves the last node of a group).
    wait_for_holders(nodes, (VIP,), set())
    (nodes["edge2"][1] / "leave").write_text("0\n")
    wait_for_holders(nodes, (VIP,), {"edge2"})
