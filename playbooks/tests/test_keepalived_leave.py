"""The keepalived role's leave mark (keepalived_leave_file), with real keepalived daemons:
while a node's mark says 1 its VRRP instances are in FAULT, so its VIPs move to the peer and
it takes none; back at 0 it is a candidate again and, preempting, takes them back.

keepalived.conf is rendered by Ansible from the role's template for each node of a two-node
inventory (unicast, the node checks off: no nginx or agent here). Two network namespaces
joined by a veth pair stand for the nodes and their segment.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from role_template import render_role_template

NODES = {"edge1": ("192.0.2.11", 150), "edge2": ("192.0.2.12", 100)}
VIP = "192.0.2.100"
INTERFACE = "eth0"
# Seconds for a VIP to move; VRRP needs about three adverts of 0.1 s, a busy host much more.
MOVE_BOUND = 60


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


def render_config(directory: Path, host: str) -> Path:
    """keepalived.conf of `host`, its leave mark in `directory`."""
    hosts = {
        name: {"keepalived_node_address": f"{address}/24", "keepalived_priority": priority}
        for name, (address, priority) in NODES.items()
    }
    inventory = directory / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"edge": {"hosts": hosts}}}}))
    instance = {"name": "VI_EDGE", "interface": INTERFACE, "virtual_router_id": 51}
    instance["virtual_ipaddresses"] = [VIP]
    settings = {
        "keepalived_instances": [instance],
        "keepalived_advert_int": 0.1,
        "keepalived_vrrp_version": 3,
        "keepalived_check_nginx": False,
        "keepalived_check_agent": False,
        "keepalived_script_user": "root",
        "keepalived_leave_file": str(directory / "leave"),
    }
    return render_role_template(
        "keepalived",
        "etc/keepalived/keepalived.conf.j2",
        directory / "keepalived.conf",
        settings,
        inventory=str(inventory),
        host=host,
    )


@pytest.fixture
def nodes(tmp_path):
    """Each node's namespace (INTERFACE with its address, on a shared veth pair) running
    keepalived with its rendered configuration: {host: (namespace, directory)}."""
    namespaces = {host: f"edgeleave-{host}-{os.getpid()}" for host in NODES}
    daemons = []
    for namespace in namespaces.values():
        run("ip", "netns", "add", namespace)
    try:
        first, second = namespaces.values()
        run("ip", "-n", first, "link", "add", INTERFACE, "type", "veth", "peer", "peer0")
        run("ip", "-n", first, "link", "set", "peer0", "netns", second, "name", INTERFACE)
        found = {}
        for host, namespace in namespaces.items():
            run("ip", "-n", namespace, "address", "add", f"{NODES[host][0]}/24", "dev", INTERFACE)
            run("ip", "-n", namespace, "link", "set", INTERFACE, "up")
            run("ip", "-n", namespace, "link", "set", "lo", "up")
            directory = tmp_path / host
            directory.mkdir()
            config = render_config(directory, host)
            daemons.append(
                subprocess.Popen(
                    [
                        *("ip", "netns", "exec", namespace, "keepalived", "--dont-fork"),
                        *("--log-console", "--use-file", str(config)),
                        *("--pid", str(directory / "keepalived.pid")),
                        *("--vrrp_pid", str(directory / "vrrp.pid")),
                        *("--checkers_pid", str(directory / "checkers.pid")),
                    ],
                    stdout=(directory / "keepalived.log").open("w"),
                    stderr=subprocess.STDOUT,
                )
            )
            found[host] = (namespace, directory)
        yield found
    finally:
        for daemon in daemons:
            daemon.terminate()
        for daemon in daemons:
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        for namespace in namespaces.values():
            subprocess.run(["ip", "netns", "del", namespace], check=False)


def holders(nodes: dict) -> set[str]:
    """The nodes with the VIP on their VRRP interface."""
    return {
        host
        for host, (namespace, _) in nodes.items()
        if f" {VIP}/" in run("ip", "-n", namespace, "-o", "address", "show", "dev", INTERFACE)
    }


def wait_for_holders(nodes: dict, expected: set[str]) -> None:
    deadline = time.monotonic() + MOVE_BOUND
    while (seen := holders(nodes)) != expected:
        if time.monotonic() > deadline:
            logs = {host: (directory / "keepalived.log").read_text() for host, (_, directory)
                    in nodes.items()}  # fmt: skip
            pytest.fail(f"VIP held by {sorted(seen)}, not {sorted(expected)}; logs: {logs}")
        time.sleep(0.2)


def test_the_leave_mark_moves_the_vips_away_and_back(nodes):
    wait_for_holders(nodes, {"edge1"})
    leave = nodes["edge1"][1] / "leave"
    assert leave.read_text().strip() == "0"  # created by keepalived (init_file)

    leave.write_text("1\n")
    wait_for_holders(nodes, {"edge2"})
    # Left, it takes nothing back while the mark holds, though its priority is the higher.
    time.sleep(1)
    assert holders(nodes) == {"edge2"}

    leave.write_text("0\n")
    wait_for_holders(nodes, {"edge1"})


def test_a_backup_that_left_does_not_take_over(nodes):
    wait_for_holders(nodes, {"edge1"})
    (nodes["edge2"][1] / "leave").write_text("1\n")
    (nodes["edge1"][1] / "leave").write_text("1\n")
    # Both left: nobody holds the VIP (edge.yml never leaves the last node of a group).
    wait_for_holders(nodes, set())
    (nodes["edge2"][1] / "leave").write_text("0\n")
    wait_for_holders(nodes, {"edge2"})
