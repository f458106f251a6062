"""Cluster nodes behind the VIPs (docs/seed-topology.md), rendered by Ansible from the roles'
templates for the inventory of test_validate_cluster_nodes (two directors, two cluster nodes):
the directors' keepalived.conf (real servers: the cluster nodes, checked at their controller's
health endpoint; lb_kind DR or TUN) and a node's VIP unit (VIPs on lo or tunl0), with the VIPs
and method playbooks/cluster_nodes.yml gives it. Each equals its golden copy and passes its
checker (`keepalived --config-test`, `systemd-analyze verify`)."""

import os
from pathlib import Path

import pytest
import yaml
from role_template import render_role_template
from test_validate_cluster_nodes import DR, TUN

GOLDEN = Path(__file__).with_name("golden") / "cluster-nodes"
UPDATE = os.environ.get("EDGEAGENT_UPDATE_GOLDEN") == "1"

# What playbooks/cluster_nodes.yml passes to the lvs role on a cluster node, read from it.
CLUSTER_NODE_VARS = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "cluster_nodes.yml").read_text()
)[0]["tasks"][0]["vars"]

CASES = {
    "dr-keepalived.conf": (DR, "keepalived", "etc/keepalived/keepalived.conf.j2", "dir1"),
    "tun-keepalived.conf": (TUN, "keepalived", "etc/keepalived/keepalived.conf.j2", "dir1"),
    "dr-edge-lvs-vip.service": (DR, "lvs", "etc/systemd/system/edge-lvs-vip.service.j2", "node1"),
    "tun-edge-lvs-vip.service": (TUN, "lvs", "etc/systemd/system/edge-lvs-vip.service.j2", "node1"),
}

# keepalived's own check, without the role's config-test wrapper (keepalived 2.2.7 kills
# itself at the first script it checks: here there is none to run, the checks are off).
CHECKERS = {
    "keepalived": "keepalived --config-test -f %s",
    "lvs": "systemd-analyze verify %s:edge-lvs-vip.service",
}


def write_inventory(directory: Path, inventory: dict) -> Path:
    """The test inventory as a hosts file, its edge group_vars inline."""
    edge = {"hosts": inventory["hosts"], "vars": inventory["group_vars"]}
    hosts = {"all": {"children": {"edge": edge, **inventory["groups"]}}}
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(hosts))
    return path


@pytest.mark.parametrize(("inventory", "role", "template", "host"), CASES.values(), ids=CASES)
def test_rendered_file_is_valid_and_equals_its_golden_copy(
    tmp_path, request, inventory, role, template, host
):
    # The role's defaults rank above inventory variables here (vars_files): the directors'
    # settings go in as task variables; LVS on, as the lvs role finds it on a director.
    directors = {
        **inventory["group_vars"],
        "keepalived_lvs": True,
        "keepalived_script_user": "root",
    }
    settings = directors if role == "keepalived" else CLUSTER_NODE_VARS
    rendered = render_role_template(
        role,
        template,
        tmp_path / Path(template).stem,
        settings,
        inventory=str(write_inventory(tmp_path, inventory)),
        host=host,
        validate=CHECKERS[role],
    ).read_text()
    golden = GOLDEN / request.node.callspec.id
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert rendered == golden.read_text()
