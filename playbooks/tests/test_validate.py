"""playbooks/validate.yml: a good inventory passes; each kind of broken inventory stops the run
with a message that names the host (or VIP group) and the variable.

Each case writes a two-node inventory into a temporary directory and runs the validation play
alone (localhost only: nothing else is contacted).
"""

import copy

import pytest
from validation import assert_passed, assert_refused, changed, run_validation

GOOD = {
    "hosts": {
        "edge1": {"keepalived_node_address": "198.51.100.11/24", "keepalived_priority": 150},
        "edge2": {"keepalived_node_address": "198.51.100.12/24", "keepalived_priority": 100},
    },
    "group_vars": {
        "keepalived_instances": [
            {
                "name": "VI_EDGE",
                "interface": "eth0",
                "virtual_router_id": 51,
                "virtual_ipaddresses": ["198.51.100.100"],
            }
        ],
        "keepalived_advert_int": 0.1,
        "edgeagent_kubeconfig": "apiVersion: v1\nkind: Config\n",
    },
}


def broken(change) -> dict:
    return changed(GOOD, change)


def test_a_good_inventory_passes(tmp_path):
    assert_passed(run_validation(tmp_path, GOOD))


def test_real_servers_of_separate_tiers_need_no_vrrp_priority(tmp_path):
    """lvs_director: false (an nginx-only LVS-DR real server) runs no keepalived."""
    inventory = copy.deepcopy(GOOD)
    inventory["hosts"]["rs1"] = {
        "keepalived_node_address": "198.51.100.13/24",
        "lvs_director": False,
    }
    assert_passed(run_validation(tmp_path, inventory))


def test_directors_of_separate_tiers_track_nothing_local(tmp_path):
    """lvs_real_server: false (a director only) runs no nginx or agent, so tracks neither; the
    agent weight check then applies to the nodes that do track it."""
    inventory = copy.deepcopy(GOOD)
    for host in ("edge1", "edge2"):
        inventory["hosts"][host].update(
            lvs_real_server=False, keepalived_check_nginx=False, keepalived_check_agent=False
        )
    inventory["hosts"]["edge2"]["keepalived_priority"] = 10
    assert_passed(run_validation(tmp_path, inventory))


CASES = {
    "two highest priorities": (
        lambda i: i["hosts"]["edge2"].update(keepalived_priority=150),
        ["VI_EDGE", "keepalived_priority", "edge1=150, edge2=150"],
    ),
    "VIP outside the subnet": (
        lambda i: i["group_vars"]["keepalived_instances"][0].update(
            virtual_ipaddresses=["198.18.0.100"]
        ),
        ["edge1", "virtual_ipaddresses", "198.51.100.0/24"],
    ),
    "no credentials": (
        lambda i: i["group_vars"].pop("edgeagent_kubeconfig"),
        ["edge1", "edgeagent_kubeconfig", "edgeagent_token"],
    ),
    "https server without a CA": (
        lambda i: i["group_vars"].update(
            edgeagent_kubeconfig="",
            edgeagent_api_server="https://api.example.net:6443",
            edgeagent_token="secret",
        ),
        ["edge1", "edgeagent_ca_cert"],
    ),
    "missing node address": (
        lambda i: i["hosts"]["edge2"].pop("keepalived_node_address"),
        ["edge2", "keepalived_node_address"],
    ),
    "shared node address": (
        lambda i: i["hosts"]["edge2"].update(keepalived_node_address="198.51.100.11/24"),
        ["keepalived_node_address 198.51.100.11", "edge1 and edge2"],
    ),
    "priority out of range": (
        lambda i: i["hosts"]["edge1"].update(keepalived_priority=255),
        ["edge1", "keepalived_priority", "got 255"],
    ),
    "VRID collision on one segment": (
        lambda i: i["hosts"]["edge2"].update(
            keepalived_instances=[
                {
                    "name": "VI_OTHER",
                    "interface": "eth0",
                    "virtual_router_id": 51,
                    "virtual_ipaddresses": ["198.51.100.101"],
                }
            ]
        ),
        ["VRID 51", "198.51.100.0/24", "VI_EDGE, VI_OTHER"],
    ),
    "sub-second adverts with VRRPv2": (
        lambda i: i["group_vars"].update(keepalived_vrrp_version=2),
        ["edge1", "keepalived_advert_int", "VRRPv2"],
    ),
    "director without nginx tracking nginx": (
        lambda i: i["hosts"]["edge1"].update(lvs_real_server=False),
        ["edge1", "lvs_real_server is false", "keepalived_check_nginx"],
    ),
    "director without nginx on a kernel without LVS": (
        lambda i: i["hosts"]["edge1"].update(
            lvs_real_server=False,
            lvs_enabled=False,
            keepalived_check_nginx=False,
            keepalived_check_agent=False,
        ),
        ["edge1", "lvs_enabled"],
    ),
    "connection sync with a failback sooner than the re-announcements": (
        lambda i: i["group_vars"].update(
            lvs_sync_daemon=True, keepalived_preempt_delay=2, lvs_sync_refresh_period=5
        ),
        ["edge1", "keepalived_preempt_delay (2)", "lvs_sync_refresh_period (5)"],
    ),
    "connection sync between co-located directors": (
        lambda i: i["group_vars"].update(
            lvs_sync_daemon=True, lvs_fwmark=True, keepalived_preempt_delay=10
        ),
        ["edge1", "lvs_sync_daemon and lvs_fwmark"],
    ),
    "agent weight too small to move the VIP": (
        lambda i: i["hosts"]["edge2"].update(keepalived_priority=10),
        ["VI_EDGE", "keepalived_check_agent_weight", "edge1=150, edge2=10"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_broken_inventory_stops_with_a_message_naming_host_and_variable(tmp_path, case):
    change, expected = CASES[case]
    assert_refused(run_validation(tmp_path, broken(change)), expected)
