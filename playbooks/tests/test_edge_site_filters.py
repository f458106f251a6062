"""The filters of playbooks/edge.yml's leave-and-rejoin (plugins/filter/edge_site.py): the
digest that says whether a node has changes pending, and the VRRP states read from the
transitions journal."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

HOSTVARS = {
    "edge1": {
        "group_names": ["edge"],
        "keepalived_priority": 150,
        "keepalived_node_address": "198.51.100.11/24",
        "nginx_worker_connections": 4096,
        "ansible_host": "198.51.100.11",
        "ansible_facts": {"date_time": {"epoch": "1"}},
        "edge_serial": 1,
        "__edge_site_digest": "previous",
    },
    "edge2": {
        "group_names": ["edge"],
        "keepalived_priority": 100,
        "keepalived_node_address": "198.51.100.12/24",
    },
}


def load(collection: Path):
    spec = importlib.util.spec_from_file_location(
        "edge_site", collection / "plugins" / "filter" / "edge_site.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def collection(tmp_path):
    """A copy of what the digest reads: roles, playbooks, plugins, the agent's source."""
    for part in ("roles", "playbooks", "plugins", "edgeagent/src"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(REPO / "edgeagent" / "pyproject.toml", tmp_path / "edgeagent")
    return tmp_path


def digest(collection: Path, hostvars: dict, host: str = "edge1") -> str:
    return load(collection).edge_site_digest(host, hostvars, list(hostvars))


def test_the_same_inputs_give_the_same_digest_in_any_host_order(collection):
    first = digest(collection, HOSTVARS)
    reordered = dict(reversed(list(HOSTVARS.items())))
    assert digest(collection, reordered) == first
    assert len(first) == 64


def test_facts_connection_and_run_steering_change_nothing(collection):
    first = digest(collection, HOSTVARS)
    changed = json.loads(json.dumps(HOSTVARS))
    changed["edge1"].update(
        ansible_host="192.0.2.1",
        ansible_facts={"date_time": {"epoch": "2"}},
        edge_serial="50%",
        __edge_site_digest="another",
    )
    assert digest(collection, changed) == first


def test_a_peers_own_settings_are_its_own(collection):
    """What the node's configuration does not read of a peer, such as its nginx settings or a
    value from its facts (absent from a run limited to the node), changes nothing."""
    first = digest(collection, HOSTVARS)
    changed = json.loads(json.dumps(HOSTVARS))
    changed["edge2"].update(nginx_worker_connections=1, keepalived_check_reachable=["x"])
    assert digest(collection, changed) == first
    assert digest(collection, changed, "edge2") != digest(collection, HOSTVARS, "edge2")


@pytest.mark.parametrize(
    "host, name, value",
    [
        ("edge1", "nginx_worker_connections", 8192),  # the node's own setting
        ("edge1", "frr_enabled", True),  # a new setting
        ("edge1", "group_names", ["edge", "edge_bgp"]),  # a group that enables a role
        ("edge2", "keepalived_node_address", "198.51.100.13/24"),  # a peer's, in its config
        ("edge2", "lvs_director", False),  # a peer's tier
        ("edge2", "group_names", ["edge", "lvs_b"]),  # a peer's VIP group
    ],
)
def test_the_nodes_settings_and_what_it_reads_of_its_peers_change_the_digest(
    collection, host, name, value
):
    changed = json.loads(json.dumps(HOSTVARS))
    changed[host][name] = value
    assert digest(collection, changed) != digest(collection, HOSTVARS)


@pytest.mark.parametrize(
    "path",
    [
        "roles/nginx/templates/etc/nginx/nginx.conf.j2",
        "playbooks/edge.yml",
        "edgeagent/src/edgeagent/render.py",
    ],
)
def test_a_change_of_what_site_yml_installs_changes_the_digest(collection, path):
    first = digest(collection, HOSTVARS)
    with (collection / path).open("a") as file:
        file.write("\n")
    assert digest(collection, HOSTVARS) != first


def test_documentation_and_compiled_files_change_nothing(collection):
    first = digest(collection, HOSTVARS)
    (collection / "roles" / "nginx" / "README.md").write_text("rewritten\n")
    cache = collection / "plugins" / "filter" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "edge_site.cpython-311.pyc").write_bytes(b"\0")
    assert digest(collection, HOSTVARS) == first


def test_an_unresolvable_setting_names_itself_rather_than_failing(collection):
    class Unresolvable(dict):
        def __getitem__(self, name):
            if name == "edgeagent_token":
                raise KeyError("vault_edgeagent_token is undefined")
            return super().__getitem__(name)

    hostvars = {**HOSTVARS, "edge1": Unresolvable(HOSTVARS["edge1"], edgeagent_token="x")}
    assert digest(collection, hostvars) != digest(collection, HOSTVARS)


def test_vrrp_states_are_each_instances_newest_transition():
    lines = [
        "keepalived started",
        '{"event":"vrrp_transition","type":"INSTANCE","name":"VI_A","state":"BACKUP","priority":100}',
        '{"event":"vrrp_transition","type":"INSTANCE","name":"VI_B","state":"BACKUP","priority":100}',
        '{"event":"vrrp_transition","type":"GROUP","name":"G","state":"MASTER","priority":100}',
        '{"event":"vrrp_transition","type":"INSTANCE","name":"VI_A","state":"MASTER","priority":100}',
        '{"event":"vrrp_transition","type":"INSTANCE","name":"VI_B","state":"FAULT","priority":100}',
    ]
    assert load(REPO).edge_vrrp_states(lines) == {"VI_A": "MASTER", "VI_B": "FAULT"}
