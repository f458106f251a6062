"""The mixed pair: one edge node on Debian 12, one on Debian 13, each running the agent from
wheels built for its own Python, at the project's version."""

import os
import pathlib

import testinfra
import testinfra.utils.ansible_runner
import yaml

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EDGE_NODES = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("edge")
GALAXY = pathlib.Path(__file__).resolve().parents[3] / "galaxy.yml"
VENV = "/opt/edgeagent/venv"


def node(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def python_version(host, python: str) -> str:
    return host.check_output(f"{python} -c 'import sys; print(*sys.version_info[:2], sep=\".\")'")


def test_the_pair_runs_debian_12_and_13():
    releases = sorted(node(name).system_info.release.split(".")[0] for name in EDGE_NODES)
    assert releases == ["12", "13"]


def test_each_agent_runs_on_the_nodes_python_at_the_projects_version():
    version = yaml.safe_load(GALAXY.read_text())["version"]
    for name in EDGE_NODES:
        host = node(name)
        assert python_version(host, f"{VENV}/bin/python") == python_version(host, "python3")
        assert host.check_output(f"{VENV}/bin/edgeagent --version") == f"edgeagent {version}"
