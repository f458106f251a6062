"""The deployment under test: settings, the inventory's edge nodes and how to reach them,
and the JSON report (docs/verify.md). conftest.py turns these into fixtures and hooks.

The suite runs from the controller against the edge nodes of an Ansible inventory:
- `make verify INVENTORY=inventory/<site>` (playbooks/verify.yml) on real hosts;
- `make lab` at its end, and molecule's verifier (molecule/default/molecule.yml), on the lab.

Nodes are reached with the inventory's own connection settings (host, user, port, key),
through paramiko wherever the inventory says ssh (or nothing, Ansible's default), and
through `docker exec` where it says docker (the lab's and molecule's containers).

Settings come from the environment (playbooks/verify.yml sets them):
  EDGE_VERIFY_INVENTORY       the inventory (else molecule's MOLECULE_INVENTORY_FILE)
  EDGE_VERIFY_GROUP           the edge nodes' group (default: edge)
  EDGE_VERIFY_STOPPED         a JSON file {"stopped": {"<node>": ["<unit>", ...]}}: units
                              stopped on purpose (molecule's side_effect), expected inactive
  EDGE_VERIFY_REPORT          the JSON report (default: reports/verify-<time>.json)
  EDGE_VERIFY_SAMPLE_HOSTS    how many served hosts to ask through each VIP (default: 5)
  EDGE_VERIFY_SETTLE_SECONDS  bound on waiting for what converges by itself (default: 30)
  EDGE_VERIFY_KUBECONFIG      a kubeconfig file of the cluster the edge serves: the Gateway
                              API checks read the Gateways and HTTPRoutes with it (unset or
                              empty: those checks are not collected)
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from testinfra.utils import ansible_runner

REPO = Path(__file__).resolve().parents[2]

UNITS = ("keepalived", "nginx", "edgeagent")
# Connections that are ssh for Ansible ("smart" and no setting at all included): the suite
# takes them through paramiko, with the same host, user, port and key.
SSH_CONNECTIONS = {
    "ssh",
    "smart",
    "paramiko",
    "paramiko_ssh",
    "ansible.builtin.ssh",
    "ansible.builtin.paramiko_ssh",
}


@dataclass(frozen=True)
class Settings:
    inventory: str
    group: str
    stopped: dict[str, list[str]]
    report: Path
    sample_hosts: int
    settle_seconds: float
    kubeconfig: str = ""


def read_settings(environ: Mapping[str, str]) -> Settings:
    inventory = environ.get("EDGE_VERIFY_INVENTORY") or environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        raise pytest.UsageError(
            "no inventory: set EDGE_VERIFY_INVENTORY (make verify INVENTORY=inventory/<site>)"
        )
    stopped_file = environ.get("EDGE_VERIFY_STOPPED", "")
    stopped = {}
    if stopped_file and Path(stopped_file).is_file():
        stopped = json.loads(Path(stopped_file).read_text())["stopped"]
    return Settings(
        inventory=inventory,
        group=environ.get("EDGE_VERIFY_GROUP", "edge"),
        stopped=stopped,
        report=Path(
            environ.get("EDGE_VERIFY_REPORT")
            or REPO / "reports" / time.strftime("verify-%Y%m%dT%H%M%SZ.json", time.gmtime())
        ),
        sample_hosts=int(environ.get("EDGE_VERIFY_SAMPLE_HOSTS", "5")),
        settle_seconds=float(environ.get("EDGE_VERIFY_SETTLE_SECONDS", "30")),
        kubeconfig=environ.get("EDGE_VERIFY_KUBECONFIG", ""),
    )


@functools.cache
def settings() -> Settings:
    return read_settings(os.environ)


@functools.cache
def runner() -> ansible_runner.AnsibleRunner:
    return ansible_runner.AnsibleRunner(settings().inventory)


@functools.cache
def node_names() -> list[str]:
    names = runner().get_hosts(settings().group)
    if not names:
        raise pytest.UsageError(f"{settings().inventory}: group {settings().group!r} has no hosts")
    return names


def role_default(role: str, name: str) -> Any:
    """A role's default for a variable the inventory may leave unset."""
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
    return defaults[name]


def node_var(name: str, variable: str, role: str) -> Any:
    """The inventory's value of a role variable for a node, else the role's default."""
    return runner().get_variables(name).get(variable, role_default(role, variable))


# The variables testinfra connects with, as Ansible renders them: an inventory may template
# them (inventory/vm-lab: ansible_host from keepalived_node_address, the key under
# inventory_dir), and `ansible-inventory --list` gives them unrendered.
CONNECTION_VARIABLES = (
    "ansible_connection",
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_become",
    "ansible_become_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
)


@functools.cache
def rendered_connection_variables() -> dict[str, dict[str, Any]]:
    """Node -> its connection variables that are set, rendered: one ad-hoc `debug` run on
    the controller (an action that contacts no node)."""
    names = ", ".join(f"'{name}'" for name in CONNECTION_VARIABLES)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible")),
            "-i",
            settings().inventory,
            settings().group,
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"msg={{{{ query('ansible.builtin.vars', {names}, default='') }}}}",
        ],
        env={
            **os.environ,
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise pytest.UsageError(
            f"{settings().inventory}: Ansible could not render the connection variables: "
            f"{(result.stderr or result.stdout).strip()[-800:]}"
        )
    hosts = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]
    return {
        name: {
            variable: value
            for variable, value in zip(CONNECTION_VARIABLES, answer["msg"], strict=True)
            if value != ""
        }
        for name, answer in hosts.items()
    }


def through_paramiko(hostvars: dict[str, Any]) -> dict[str, Any]:
    """A node's inventory variables as the suite connects with them: an ssh connection (or
    none, Ansible's default) becomes paramiko with the same host, user, port and key, and a
    login as another user than root uses sudo (the checks read root's files and the IPVS
    table). Other connections (docker) stay as they are."""
    if hostvars.get("ansible_connection", "ssh") not in SSH_CONNECTIONS:
        return hostvars
    become = hostvars.get("ansible_user", "root") != "root"
    return {**hostvars, "ansible_connection": "paramiko_ssh"} | (
        {"ansible_become": True} if become else {}
    )


def connect(name: str) -> testinfra.host.Host:
    """The node through testinfra, with the inventory's connection settings (through_paramiko)."""
    inventory = runner().inventory
    hostvars = through_paramiko(
        inventory["_meta"]["hostvars"].get(name, {}) | rendered_connection_variables()[name]
    )
    patched = {**inventory, "_meta": {"hostvars": {name: hostvars}}}
    host = ansible_runner.get_ansible_host(runner().ansible_config, patched, name)
    if host is None:
        raise pytest.UsageError(
            f"{name}: ansible_connection {hostvars['ansible_connection']!r} is neither ssh "
            "nor docker; the verify suite reaches nodes through paramiko or docker exec"
        )
    return host


def eventually(probe, accept, settle_seconds: float):
    """probe()'s first result that accept() takes within settle_seconds, else its last one
    (an OSError when the last attempt failed: refused or timed out while a VIP moved)."""
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            result = probe()
        except OSError as error:
            result = error
        if (not isinstance(result, OSError) and accept(result)) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@dataclass
class Report:
    """reports/verify-<time>.json: one record per check, with the reason it failed."""

    settings: Settings
    started: float = field(default_factory=time.time)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def add(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.passed:
            return
        reason = None
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            reason = (crash.message if crash else str(report.longrepr)).splitlines()[0]
            reason = reason.removeprefix("AssertionError: ")
        self.checks.append(
            {
                "check": report.nodeid.split("::", 1)[-1],
                "phase": report.when,
                "outcome": report.outcome,
                "seconds": round(report.duration, 3),
                "reason": reason,
            }
        )

    def write(self) -> Path:
        failed = [check for check in self.checks if check["outcome"] != "passed"]
        path = self.settings.report
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "inventory": str(Path(self.settings.inventory).resolve()),
            "group": self.settings.group,
            "nodes": node_names(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "seconds": round(time.time() - self.started, 1),
            "result": "failed" if failed else "passed",
            "failed": [f"{check['check']}: {check['reason']}" for check in failed],
            "checks": self.checks,
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        return path
