"""playbooks/validate.yml with a cutover (docs/seed-topology.md, "Cutover"): directors in front
of cluster nodes with an edge tier of nginx nodes pass; each setting the cutover cannot work
with stops the run with a message that names the director (or node), the group and what to
write instead."""

import pytest
from test_validate_cluster_nodes import DR
from validation import assert_passed, assert_refused, changed, run_validation

# Edge nodes that serve only (site.yml: nginx, the agent), not directors.
EDGE_TIER_NODE = {
    "lvs_real_server": True,
    "lvs_director": False,
    "keepalived_check_nginx": True,
    "keepalived_check_agent": True,
}

CUTOVER = changed(
    DR,
    lambda i: (
        i["hosts"].update(
            edge1={"keepalived_node_address": "198.51.100.31/24", **EDGE_TIER_NODE},
            edge2={"keepalived_node_address": "198.51.100.32/24", **EDGE_TIER_NODE},
        ),
        i["group_vars"].update(
            keepalived_lvs_cutover_edge_group="new_edges",
            keepalived_lvs_cutover_edge_percent=10,
        ),
        i["groups"].update(new_edges={"hosts": {"edge1": {}, "edge2": {}}}),
    ),
)


def test_a_cutover_inventory_passes(tmp_path):
    assert_passed(run_validation(tmp_path, CUTOVER))


CASES = {
    "no cluster node group": (
        changed(CUTOVER, lambda i: i["group_vars"].pop("keepalived_lvs_cluster_node_group")),
        [
            "dir1: keepalived_lvs_cutover_edge_group new_edges",
            "no keepalived_lvs_cluster_node_group",
        ],
    ),
    "an edge group that is not there": (
        changed(
            CUTOVER, lambda i: i["group_vars"].update(keepalived_lvs_cutover_edge_group="edges2")
        ),
        ["dir1: keepalived_lvs_cutover_edge_group edges2", "there is no such inventory group"],
    ),
    "an empty edge group": (
        changed(CUTOVER, lambda i: i["groups"].update(new_edges={"hosts": {}})),
        ["dir1: keepalived_lvs_cutover_edge_group new_edges", "has no host"],
    ),
    "an edge tier node outside group edge": (
        changed(
            CUTOVER,
            lambda i: i["groups"]["new_edges"]["hosts"].update(
                edge3={"keepalived_node_address": "198.51.100.33/24"}
            ),
        ),
        [
            "dir1: the nodes of keepalived_lvs_cutover_edge_group new_edges",
            "edge3 not in group edge",
        ],
    ),
    "an edge tier node that serves nothing": (
        changed(CUTOVER, lambda i: i["hosts"]["edge2"].update(lvs_real_server=False)),
        ["dir1:", "edge2 with lvs_real_server false (set it true"],
    ),
    "an edge tier node that is a director": (
        changed(
            CUTOVER,
            # A co-located director of its own (the cutover's directors' variables not).
            lambda i: i["hosts"]["edge1"].update(
                lvs_director=True,
                keepalived_priority=120,
                keepalived_lvs_cluster_node_group="",
                keepalived_lvs_cutover_edge_group="",
            ),
        ),
        ["dir1:", "edge1 with lvs_director true (set it false"],
    ),
    "a node in both tiers": (
        changed(CUTOVER, lambda i: i["groups"]["new_edges"]["hosts"].update(node2={})),
        ["dir1: node2 in both keepalived_lvs_cutover_edge_group new_edges", "seed_nodes"],
    ),
    "a percent over 100": (
        changed(CUTOVER, lambda i: i["group_vars"].update(keepalived_lvs_cutover_edge_percent=150)),
        ["dir1: keepalived_lvs_cutover_edge_percent", "whole number 0-100", "(got 150)"],
    ),
    "a fractional percent": (
        changed(
            CUTOVER, lambda i: i["group_vars"].update(keepalived_lvs_cutover_edge_percent=12.5)
        ),
        ["dir1: keepalived_lvs_cutover_edge_percent", "(got 12.5)"],
    ),
    "a scheduler that ignores weights": (
        changed(CUTOVER, lambda i: i["group_vars"].update(keepalived_lvs_scheduler="nq")),
        ["dir1: keepalived_lvs_scheduler nq", "use one of sed, wlc, wrr"],
    ),
    "an edge tier node in the static mode": (
        changed(CUTOVER, lambda i: i["hosts"]["edge2"].update(nginx_dynamic_upstreams=False)),
        ["edge2: edgeagent_dynamic_upstreams is false", "dir1 moves traffic to it"],
    ),
    "an edge tier node whose agent is in the static mode": (
        changed(CUTOVER, lambda i: i["hosts"]["edge1"].update(edgeagent_dynamic_upstreams=False)),
        ["edge1: edgeagent_dynamic_upstreams is false"],
    ),
}


@pytest.mark.parametrize("inventory,expected", CASES.values(), ids=CASES.keys())
def test_a_cutover_that_cannot_work_is_refused(tmp_path, inventory, expected):
    assert_refused(run_validation(tmp_path, inventory), expected)


@pytest.mark.parametrize("scheduler", ["wrr", "sed"])
def test_schedulers_that_share_by_weight_pass(tmp_path, scheduler):
    inventory = changed(
        CUTOVER, lambda i: i["group_vars"].update(keepalived_lvs_scheduler=scheduler)
    )
    assert_passed(run_validation(tmp_path, inventory))
