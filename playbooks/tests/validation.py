"""playbooks/validate.yml run for real on an inventory written into a temporary directory
(localhost only: nothing else is contacted), and what its tests check of the outcome."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "validate.yml"


def run_validation(tmp_path: Path, inventory: dict) -> subprocess.CompletedProcess:
    """The validation play alone on `inventory`: {"hosts": group edge's hosts, "group_vars":
    group edge's variables, "groups": more inventory groups beside edge (their hosts,
    children), e.g. cluster_nodes}."""
    groups = {"edge": {"hosts": inventory["hosts"]}, **inventory.get("groups", {})}
    hosts = {"all": {"children": groups}}
    (tmp_path / "group_vars" / "edge").mkdir(parents=True)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (tmp_path / "group_vars" / "edge" / "all.yml").write_text(
        yaml.safe_dump(inventory["group_vars"])
    )
    environment = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "NO_COLOR": "1"}
    playbook = Path(sys.executable).with_name("ansible-playbook")
    return subprocess.run(
        [str(playbook), "-i", str(tmp_path), str(PLAYBOOK)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=300,
    )


def changed(inventory: dict, change) -> dict:
    """A copy of `inventory` as `change` leaves it."""
    inventory = copy.deepcopy(inventory)
    change(inventory)
    return inventory


def assert_passed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def assert_refused(result: subprocess.CompletedProcess, expected) -> None:
    """The run failed, and its output holds each text of `expected`. Ansible folds a long
    message over lines, and a failed assert can land on stdout or stderr: both are read, with
    their white space folded."""
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    for text in expected:
        assert text in output, f"{text!r} missing from:\n{output}"
