"""playbooks/validate.yml and edge_vip_mode (docs/bgp.md): a BGP-mode inventory passes without
any VRRP setting, so does a site with a VRRP group and a BGP group side by side; the mixes that
cannot work stop the run with a message naming the host (or the VIP) and the variable."""

import copy

import pytest
from validation import assert_passed, assert_refused, changed, run_validation

UPSTREAM = [{"address": "198.51.100.1", "asn": 64500}, {"address": "198.51.100.2", "asn": 64500}]

BGP = {
    "hosts": {
        "edge1": {"keepalived_node_address": "198.51.100.11/24", "frr_router_id": "198.51.100.11"},
        "edge2": {"keepalived_node_address": "198.51.100.12/24", "frr_router_id": "198.51.100.12"},
    },
    "group_vars": {
        "edge_vip_mode": "bgp",
        "lvs_enabled": False,
        "frr_asn": 64600,
        "frr_upstream_peers": UPSTREAM,
        "frr_vips": ["198.51.100.100"],
        "edgeagent_kubeconfig": "apiVersion: v1\nkind: Config\n",
    },
}

# edge1 holds 198.51.100.110 by VRRP alone; edge2 and edge3 announce 198.51.100.100 by BGP.
MIXED = copy.deepcopy(BGP)
MIXED["hosts"]["edge3"] = {
    "keepalived_node_address": "198.51.100.13/24",
    "frr_router_id": "198.51.100.13",
}
MIXED["hosts"]["edge1"].update(
    edge_vip_mode="vrrp",
    lvs_enabled=True,
    frr_upstream_peers=[],
    frr_vips=[],
    keepalived_priority=150,
    keepalived_instances=[
        {
            "name": "VI_EDGE",
            "interface": "eth0",
            "virtual_router_id": 51,
            "virtual_ipaddresses": ["198.51.100.110"],
        }
    ],
)


@pytest.mark.parametrize("inventory", [BGP, MIXED], ids=["bgp", "vrrp-and-bgp-groups"])
def test_a_good_inventory_passes(tmp_path, inventory):
    assert_passed(run_validation(tmp_path, inventory))


CASES = {
    "unknown mode": (
        changed(BGP, lambda i: i["hosts"]["edge2"].update(edge_vip_mode="ecmp")),
        ["edge2", "edge_vip_mode must be vrrp", "(got ecmp)"],
    ),
    "bgp without upstream peers": (
        changed(BGP, lambda i: i["group_vars"].update(frr_upstream_peers=[])),
        ["edge1", "edge_vip_mode is bgp", "0 upstream peers"],
    ),
    "bgp without VIPs": (
        changed(BGP, lambda i: i["group_vars"].update(frr_vips=[])),
        ["edge1", "edge_vip_mode is bgp", "got 0 VIPs"],
    ),
    "bgp with LVS": (
        changed(BGP, lambda i: i["group_vars"].pop("lvs_enabled")),
        ["edge1", "lvs_enabled false"],
    ),
    "bgp with VRRP instances": (
        changed(
            BGP,
            lambda i: i["group_vars"].update(
                keepalived_instances=MIXED["hosts"]["edge1"]["keepalived_instances"]
            ),
        ),
        ["edge2", "keepalived_instances must be empty"],
    ),
    "vrrp announcing by BGP": (
        changed(MIXED, lambda i: i["hosts"]["edge1"].update(frr_vips=["198.51.100.110"])),
        ["edge1", "frr_vips and frr_upstream_peers announce VIPs by BGP", "edge_vip_mode vrrp"],
    ),
    "a VIP in both modes": (
        changed(
            MIXED,
            lambda i: i["hosts"]["edge1"]["keepalived_instances"][0].update(
                virtual_ipaddresses=["198.51.100.100"]
            ),
        ),
        ["in both modes: 198.51.100.100: BGP on edge2, edge3; VRRP on edge1"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_mix_that_cannot_work_stops_with_a_message(tmp_path, case):
    inventory, expected = CASES[case]
    assert_refused(run_validation(tmp_path, inventory), expected)
