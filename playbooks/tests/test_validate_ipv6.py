"""playbooks/validate.yml and IPv6 VIP groups in VRRP mode: a dual-stack inventory (an IPv4
and an IPv6 keepalived_instances entry, keepalived_node_address6 on every node) passes; what
keepalived cannot run stops the run with a message naming the host and the variable."""

import copy

import pytest
from test_validate import GOOD
from validation import assert_passed, assert_refused, changed, run_validation

IPV6_GROUP = {
    "name": "VI_EDGE6",
    "interface": "eth0",
    "virtual_router_id": 51,
    "virtual_ipaddresses": ["2001:db8:10::100"],
}

DUAL_STACK = copy.deepcopy(GOOD)
DUAL_STACK["hosts"]["edge1"]["keepalived_node_address6"] = "2001:db8:10::11/64"
DUAL_STACK["hosts"]["edge2"]["keepalived_node_address6"] = "2001:db8:10::12/64"
DUAL_STACK["group_vars"]["keepalived_instances"].append(IPV6_GROUP)
DUAL_STACK["group_vars"]["lvs_enabled"] = False


def test_a_dual_stack_inventory_passes(tmp_path):
    assert_passed(run_validation(tmp_path, DUAL_STACK))


def broken(change) -> dict:
    return changed(DUAL_STACK, change)


def ipv6_group(inventory) -> dict:
    return inventory["group_vars"]["keepalived_instances"][1]


CASES = {
    "both families in one entry": (
        lambda i: ipv6_group(i)["virtual_ipaddresses"].append("198.51.100.101"),
        ["edge1", "VI_EDGE6", "addresses of one family", "2001:db8:10::/64"],
    ),
    "no IPv6 node address": (
        lambda i: i["hosts"]["edge2"].pop("keepalived_node_address6"),
        ["edge2", "VI_EDGE6", "keepalived_node_address6 not set"],
    ),
    "IPv6 VIP outside the subnet": (
        lambda i: ipv6_group(i).update(virtual_ipaddresses=["2001:db8:99::100"]),
        ["edge1", "VI_EDGE6", "2001:db8:10::/64"],
    ),
    "bad IPv6 node address": (
        lambda i: i["hosts"]["edge1"].update(keepalived_node_address6="2001:db8:10::11"),
        ["edge1", "keepalived_node_address6 must be this node's IPv6 address"],
    ),
    "IPv6 on VRRPv2": (
        lambda i: i["group_vars"].update(keepalived_vrrp_version=2, keepalived_advert_int=1),
        ["edge1", "VI_EDGE6", "keepalived_vrrp_version 3"],
    ),
    "IPv6 with LVS": (
        lambda i: i["group_vars"].pop("lvs_enabled"),
        ["edge1", "VI_EDGE6", "lvs_enabled false"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_what_keepalived_cannot_run_stops_with_a_message(tmp_path, case):
    change, expected = CASES[case]
    assert_refused(run_validation(tmp_path, broken(change)), expected)
