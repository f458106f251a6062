"""Test support for molecule/lvs: the VM lab's topologies, ssh into the VMs, IPVS tables,
playbook runs and load through a VIP, all from the host (the client of the VIPs).

Also usable against `make vm-lab` (the inventory defaults to inventory/vm-lab).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# `ipvsadm -Ln` is read with the collection's parser (.collections/: this checkout).
sys.path.insert(0, str(REPO / ".collections"))
from ansible_collections.edgeops.edge.plugins.module_utils import ipvs  # noqa: E402

VM_LAB = REPO / "inventory" / "vm-lab"
SSH_KEY = REPO / "build" / "vm" / "ssh" / "id_ed25519"
# The host's address on the VMs' bridge: the client whose address LVS-DR must keep.
CLIENT_ADDRESS = "198.19.0.1"
# Where the figures of a run go (reports/ is git-ignored).
FIGURES_DIR = REPO / "reports" / "vm-lab"
# One ssh login per VM for the whole run: a login costs seconds of emulated CPU.
SSH_OPTIONS = [
    "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=error", "-o", "ControlMaster=auto", "-o", "ControlPersist=60",
    "-o", "ControlPath=/tmp/edge-vm-test-%h",
]  # fmt: skip


def inventory_dir() -> Path:
    """molecule's inventory (hosts.yml and group_vars linked from inventory/vm-lab)."""
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    return Path(ephemeral) / "inventory" if ephemeral else VM_LAB


def _group_vars(group: str) -> dict:
    merged: dict = {}
    for path in sorted((VM_LAB / "group_vars" / group).glob("*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


def _hosts(tree: dict) -> dict[str, dict]:
    """Every host under an inventory group (its children too) -> its variables."""
    hosts = dict(tree.get("hosts") or {})
    for child in (tree.get("children") or {}).values():
        hosts.update(_hosts(child or {}))
    return hosts


@dataclass(frozen=True)
class Topology:
    name: str
    vip: str
    directors: tuple[str, ...]
    real_servers: tuple[str, ...]
    addresses: dict[str, str]
    delay_loop: int

    def address(self, host: str) -> str:
        return self.addresses[host]


def _all_addresses() -> dict[str, str]:
    edge = yaml.safe_load((VM_LAB / "hosts.yml").read_text())["all"]["children"]["edge"]
    return {h: v["keepalived_node_address"].split("/")[0] for h, v in _hosts(edge).items()}


ALL_ADDRESSES = _all_addresses()


def topologies() -> dict[str, Topology]:
    edge = yaml.safe_load((VM_LAB / "hosts.yml").read_text())["all"]["children"]["edge"]
    defaults = _group_vars("edge")
    found = {}
    for group, tree in edge["children"].items():
        hosts = _hosts(tree)
        settings = {**defaults, **_group_vars(group)}
        children = tree.get("children") or {}
        directors = sorted(_hosts(children[f"{group}_directors"])) if children else sorted(hosts)
        real_servers = (
            sorted(_hosts(children[f"{group}_real_servers"])) if children else sorted(hosts)
        )
        found[group] = Topology(
            name=group,
            vip=settings["keepalived_instances"][0]["virtual_ipaddresses"][0],
            directors=tuple(directors),
            real_servers=tuple(real_servers),
            addresses={h: v["keepalived_node_address"].split("/")[0] for h, v in hosts.items()},
            delay_loop=settings["keepalived_lvs_check_delay_loop"],
        )
    return found


def _logins() -> dict[str, dict]:
    """Host -> how to log in: molecule's instance config when there is one (the vagrant
    scenario's VMs have their own keys and ports), else the VM lab's key at the host's address."""
    config = os.environ.get("MOLECULE_INSTANCE_CONFIG")
    if config and Path(config).is_file():
        return {i["instance"]: i for i in yaml.safe_load(Path(config).read_text()) or []}
    return {}


def ssh(host: str, command: str, check: bool = True) -> str:
    """Runs command as root on the inventory host; returns its output."""
    login = _logins().get(host) or {
        "address": ALL_ADDRESSES[host],
        "user": "root",
        "port": 22,
        "identity_file": str(SSH_KEY),
    }
    if login["user"] != "root":
        command = f"sudo sh -c {shlex.quote(command)}"
    result = subprocess.run(
        [
            "ssh",
            "-i",
            str(login["identity_file"]),
            "-p",
            str(login["port"]),
            *SSH_OPTIONS,
            f"{login['user']}@{login['address']}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{host}: {command}: {result.returncode} {result.stderr}")
    return result.stdout


def current_holder(topology: Topology) -> str | None:
    """The director holding the VIP on its VRRP interface (LVS-DR real servers have it on lo),
    None in the moment of a handover when nobody does."""
    for director in topology.directors:
        lines = ssh(director, f"ip -4 -o address show to {topology.vip}/32").splitlines()
        if any(line.split()[1] != "lo" for line in lines):
            return director
    return None


def holder(topology: Topology) -> str:
    """The director holding the VIP; AssertionError when nobody does."""
    director = current_holder(topology)
    assert director, f"nobody holds {topology.vip}"
    return director


def ipvs_rows(topology: Topology, director: str) -> dict[str, ipvs.RealServer]:
    """The director's real servers (real_server_rows of its `ipvsadm -Ln`)."""
    return real_server_rows(ssh(director, "ipvsadm -Ln"))


def real_server_rows(ipvsadm_ln: str) -> dict[str, ipvs.RealServer]:
    """Real server address (canonical, IPv6 without brackets) -> (weight, active, inactive
    connections), summed over services (weight: the smallest)."""
    rows: dict[str, ipvs.RealServer] = {}
    for servers in ipvs.table(ipvsadm_ln).values():
        for server, row in servers.items():
            address = ipvs.address(server)
            old = rows.get(address)
            if old is not None:
                weight = min(old.weight, row.weight)
                row = ipvs.RealServer(weight, old.active + row.active, old.inactive + row.inactive)
            rows[address] = row
    return rows


def ipvs_connections(director: str) -> list[dict]:
    """The director's IPVS connection table (`ipvsadm -Lnc`): one dict per entry with the
    protocol, seconds left, state, client, virtual and real server addresses."""
    entries = []
    for line in ssh(director, "ipvsadm -Lnc").splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0] in ("TCP", "UDP"):
            minutes, seconds = fields[1].split(":")
            entries.append(
                {
                    "proto": fields[0],
                    "expires_s": int(minutes) * 60 + int(seconds),
                    "state": fields[2],
                    "source": fields[3],
                    "virtual": fields[4],
                    "destination": fields[5],
                }
            )
    return entries


def sync_daemons(director: str) -> list[str]:
    """The director's IPVS sync daemons (`ipvsadm -L --daemon`), one line each."""
    return ssh(director, "ipvsadm -L --daemon").splitlines()


def client_ports(vip: str, pid: int) -> set[int]:
    """The local ports of process pid's established TCP connections to vip:80 (the host is
    the client of the VIPs)."""
    output = subprocess.run(
        ["ss", "-Htnp", "state", "established", "dst", f"{vip}:80"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {
        int(line.split()[2].rsplit(":", 1)[1])
        for line in output.splitlines()
        if f"pid={pid}," in line
    }


def wait_for(condition, timeout: float, period: float = 0.2) -> float:
    """Seconds until condition() was true; AssertionError after timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {condition.__doc__ or condition}")
        time.sleep(period)
    return time.monotonic() - started


def playbook(name: str, limit: str) -> float:
    """Runs the collection's playbook edgeops.edge.<name> with the scenario's inventory;
    returns its duration. Its output, each task timed, goes to reports/vm-lab/<name>-<limit>.log
    (to line up with a load's records)."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    log = FIGURES_DIR / f"{name}-{limit}.log"
    started = time.monotonic()
    with log.open("w") as output:
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("ansible-playbook")),
                "-i", str(inventory_dir()), "-l", limit, f"edgeops.edge.{name}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={
                **os.environ,
                "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
            },
            timeout=1200,
        )  # fmt: skip
    assert result.returncode == 0, f"{name} -l {limit} failed: {log.read_text()[-4000:]}"
    return time.monotonic() - started


class Load:
    """drill/loadgen.py through a VIP: a new connection every `period` seconds and
    `long_lived` keep-alive connections; a request fails after `timeout` seconds. Its records
    go to reports/vm-lab/<name>.jsonl."""

    def __init__(self, vip: str, name: str, period=0.05, long_lived=0, timeout=3.0) -> None:
        FIGURES_DIR.mkdir(parents=True, exist_ok=True)
        out = self.out = FIGURES_DIR / f"{name}.jsonl"
        self.stop_file = out.with_suffix(".stop")
        self.stop_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "drill.loadgen", "--address", vip,
                "--period", str(period), "--timeout", str(timeout),
                "--long-lived", str(long_lived), "--long-period", "0.2",
                "--max-seconds", "1500", "--stop-file", str(self.stop_file), "--out", str(out),
            ],
            cwd=REPO,
        )  # fmt: skip

    def stop(self) -> list[dict]:
        self.stop_file.touch()
        self.process.wait(timeout=60)
        lines = self.out.read_text().splitlines()
        records = [r for r in map(json.loads, lines) if r["kind"] in ("new", "long")]
        assert records, f"the load made no request: {self.out}"
        return records


def summary(records: list[dict]) -> dict:
    failed = [r for r in records if not r["ok"]]
    return {
        "requests": len(records),
        "failed": len(failed),
        "broken": sum(1 for r in records if r.get("broken")),
        "errors": dict(Counter(r["err"] for r in failed)),
        "by_node": dict(Counter(r["node"] for r in records if r["ok"])),
        "max_ms": max((r["ms"] for r in records), default=0),
    }


def record_figures(name: str, figures: dict) -> None:
    """Adds figures to reports/vm-lab/<name>.json (read into docs/failover.md by hand)."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURES_DIR / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
