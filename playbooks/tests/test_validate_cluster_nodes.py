"""playbooks/validate.yml with cluster nodes behind the VIPs (docs/seed-topology.md): two
directors in front of the in-cluster controller of two cluster nodes pass, by LVS-DR on their
subnet and by LVS-TUN on another; each mix that cannot work stops the run with a message that
names the host and says why.

The filters that playbooks/cluster_nodes.yml reads (which VIPs and method a node gets) are
tested here too, on plain data.
"""

import importlib.util

import pytest
from ansible.errors import AnsibleFilterError
from validation import REPO, assert_passed, assert_refused, changed, run_validation

_spec = importlib.util.spec_from_file_location(
    "edge_cluster_nodes", REPO / "plugins" / "filter" / "edge_cluster_nodes.py"
)
filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(filters)

DIRECTORS_ONLY = {
    "lvs_real_server": False,
    "keepalived_check_nginx": False,
    "keepalived_check_agent": False,
}

DR = {
    "hosts": {
        "dir1": {"keepalived_node_address": "198.51.100.11/24", "keepalived_priority": 150},
        "dir2": {"keepalived_node_address": "198.51.100.12/24", "keepalived_priority": 100},
    },
    "group_vars": {
        "keepalived_instances": [
            {
                "name": "VI_SEED",
                "interface": "eth0",
                "virtual_router_id": 52,
                "virtual_ipaddresses": ["198.51.100.102"],
            }
        ],
        **DIRECTORS_ONLY,
        "keepalived_lvs_cluster_node_group": "seed_nodes",
        "edgeagent_kubeconfig": "apiVersion: v1\nkind: Config\n",
    },
    "groups": {
        "cluster_nodes": {
            "children": {
                "seed_nodes": {
                    "hosts": {
                        "node1": {"keepalived_node_address": "198.51.100.21/24"},
                        "node2": {"keepalived_node_address": "198.51.100.22/24"},
                    }
                }
            }
        }
    },
}


def nodes(inventory) -> dict:
    return inventory["groups"]["cluster_nodes"]["children"]["seed_nodes"]["hosts"]


# The nodes on another subnet, reached by IPIP.
TUN = changed(
    DR,
    lambda i: (
        i["group_vars"].update(keepalived_lvs_method="TUN"),
        nodes(i)["node1"].update(keepalived_node_address="198.18.7.21/24"),
        nodes(i)["node2"].update(keepalived_node_address="198.18.7.22/24"),
    ),
)


@pytest.mark.parametrize("inventory", [DR, TUN], ids=["dr", "tun"])
def test_directors_in_front_of_cluster_nodes_pass(tmp_path, inventory):
    assert_passed(run_validation(tmp_path, inventory))


CASES = {
    "no health port": (
        changed(DR, lambda i: i["group_vars"].update(keepalived_lvs_cluster_check_port=None)),
        ["dir1", "keepalived_lvs_cluster_check_port must be its port", "(got nothing)"],
    ),
    "NAT": (
        changed(DR, lambda i: i["group_vars"].update(keepalived_lvs_method="NAT")),
        ["dir1", "keepalived_lvs_method NAT", "default gateway"],
    ),
    "DR real server outside the directors' subnet": (
        changed(DR, lambda i: nodes(i)["node2"].update(keepalived_node_address="198.18.7.22/24")),
        ["node2", "outside that of dir1 (198.51.100.0/24)", "keepalived_lvs_method TUN"],
    ),
    "a node in both the edge group and the cluster node group": (
        changed(DR, lambda i: nodes(i).update(dir2={})),
        ["dir1", "in both: dir2"],
    ),
    "a group that is not there": (
        changed(DR, lambda i: i["group_vars"].update(keepalived_lvs_cluster_node_group="seed")),
        ["dir1", "keepalived_lvs_cluster_node_group seed", "there is no such group"],
    ),
    "a group outside cluster_nodes": (
        changed(
            DR,
            lambda i: i.update(
                groups={"seed_nodes": i["groups"]["cluster_nodes"]["children"]["seed_nodes"]}
            ),
        ),
        ["dir1", "group cluster_nodes", "missing: node1, node2"],
    ),
    "TUN without rp_filter off": (
        changed(
            TUN,
            lambda i: nodes(i)["node1"].update(
                lvs_extra_sysctls={"net.ipv4.conf.all.rp_filter": 1}
            ),
        ),
        ["node1", "LVS-TUN", "net.ipv4.conf.all.rp_filter=1 (needs 0)", "drops the"],
    ),
    "TUN in front of the edge's nginx": (
        changed(
            DR,
            lambda i: (
                i["group_vars"].pop("keepalived_lvs_cluster_node_group"),
                i["group_vars"].update(keepalived_lvs_method="TUN"),
            ),
        ),
        ["dir1", "TUN", "only in front of cluster nodes"],
    ),
    "a director that is also a real server": (
        changed(DR, lambda i: i["hosts"]["dir2"].update(lvs_real_server=True)),
        ["dir2", "lvs_real_server false"],
    ),
}


@pytest.mark.parametrize("inventory,expected", CASES.values(), ids=CASES.keys())
def test_a_mix_that_cannot_work_is_refused(tmp_path, inventory, expected):
    assert_refused(run_validation(tmp_path, inventory), expected)


def test_a_cluster_node_gets_the_vips_and_method_of_its_directors():
    groups = {"edge": ["dir1", "dir2", "edge3"], "seed_nodes": ["node1"], "other": ["node2"]}
    hostvars = {
        "dir1": {
            "keepalived_lvs_cluster_node_group": "seed_nodes",
            "keepalived_lvs_method": "TUN",
            "keepalived_instances": [{"virtual_ipaddresses": ["198.51.100.102", "2001:db8::1"]}],
        },
        "dir2": {
            "keepalived_lvs_cluster_node_group": "seed_nodes",
            "lvs_method": "TUN",
            "keepalived_instances": [{"virtual_ipaddresses": ["198.51.100.103"]}],
        },
        "edge3": {"keepalived_instances": [{"virtual_ipaddresses": ["198.51.100.100"]}]},
        "node1": {},
        "node2": {},
    }
    vips = filters.edge_cluster_node_vips("node1", hostvars, groups)
    assert vips == ["198.51.100.102", "198.51.100.103"]
    assert filters.edge_cluster_node_method("node1", hostvars, groups) == "TUN"
    assert filters.edge_cluster_node_vips("node2", hostvars, groups) == []
    with pytest.raises(AnsibleFilterError, match=r"node2: .* got no director"):
        filters.edge_cluster_node_method("node2", hostvars, groups)
