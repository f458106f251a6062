"""The directors' keepalived.conf during a cutover (playbooks/cutover.yml): the cluster nodes
and the edge tier's nginx nodes are real servers of the same virtual servers, each tier at
the weight of its share and checked at its own health endpoint. Rendered by Ansible from the
role's template for the inventory of test_validate_cluster_nodes plus an edge tier; equals
its golden copy and passes `keepalived --config-test`."""

import copy

import pytest
from role_template import render_role_template
from test_cluster_nodes_render import CHECKERS, GOLDEN, UPDATE, write_inventory
from test_validate_cluster_nodes import DR

EDGE_TIER = {
    "new_edges": {
        "hosts": {
            "edge1": {"keepalived_node_address": "198.51.100.31/24"},
            "edge2": {"keepalived_node_address": "198.51.100.32/24"},
            "edge3": {"keepalived_node_address": "198.51.100.33/24"},
        }
    }
}


@pytest.mark.parametrize("percent", [10, 100])
def test_both_tiers_at_their_weights(tmp_path, percent):
    inventory = copy.deepcopy(DR)
    inventory["groups"].update(EDGE_TIER)
    directors = {
        **inventory["group_vars"],
        "keepalived_lvs": True,
        "keepalived_script_user": "root",
        "keepalived_lvs_cutover_edge_group": "new_edges",
        "keepalived_lvs_cutover_edge_percent": percent,
    }
    rendered = render_role_template(
        "keepalived",
        "etc/keepalived/keepalived.conf.j2",
        tmp_path / "keepalived.conf",
        directors,
        inventory=str(write_inventory(tmp_path, inventory)),
        host="dir1",
        validate=CHECKERS["keepalived"],
    ).read_text()
    golden = GOLDEN / f"cutover-{percent}-keepalived.conf"
    if UPDATE:
        golden.write_text(rendered)
    assert rendered == golden.read_text()
