"""Real keepalived daemons in network namespaces, for the keepalived role's tests: two
namespaces joined by a veth pair stand for two nodes and their segment, each running
keepalived with the configuration its test rendered from the role's template."""

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

INTERFACE = "eth0"
# Seconds for a VIP to move; VRRP needs about three adverts of 0.1 s, a busy host much more.
MOVE_BOUND = 60

Nodes = dict[str, tuple[str, Path]]
"""{host: (namespace, directory)}: the directory holds its keepalived.conf and log."""


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


@contextmanager
def keepalived_nodes(
    tmp_path: Path, prefix: str, hosts: list[str], configure: Callable[[str, str, Path], Path]
) -> Iterator[Nodes]:
    """A namespace per host (names from `prefix`), INTERFACE on a shared veth pair, then
    `configure(host, namespace, directory)`, which adds the node's addresses (and whatever
    else it needs) and returns its keepalived.conf; keepalived runs on it until the end.
    `directory` is tmp_path/<host>, which the caller may have filled already (rendered files:
    all hosts' in one ansible-playbook run)."""
    namespaces = {host: f"{prefix}-{host}-{os.getpid()}" for host in hosts}
    daemons = []
    for namespace in namespaces.values():
        run("ip", "netns", "add", namespace)
    try:
        first, second = namespaces.values()
        run("ip", "-n", first, "link", "add", INTERFACE, "type", "veth", "peer", "peer0")
        run("ip", "-n", first, "link", "set", "peer0", "netns", second, "name", INTERFACE)
        found = {}
        for host, namespace in namespaces.items():
            directory = tmp_path / host
            directory.mkdir(exist_ok=True)
            config = configure(host, namespace, directory)
            run("ip", "-n", namespace, "link", "set", INTERFACE, "up")
            run("ip", "-n", namespace, "link", "set", "lo", "up")
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


def holders(nodes: Nodes, vip: str) -> set[str]:
    """The nodes with `vip` on their VRRP interface."""
    return {
        host
        for host, (namespace, _) in nodes.items()
        if f" {vip}/" in run("ip", "-n", namespace, "-o", "address", "show", "dev", INTERFACE)
    }


def wait_for_holders(nodes: Nodes, vips: tuple[str, ...], expected: set[str]) -> None:
    """Until every one of `vips` is held by exactly the `expected` nodes (MOVE_BOUND)."""
    deadline = time.monotonic() + MOVE_BOUND
    wanted: Mapping[str, set[str]] = dict.fromkeys(vips, expected)
    while (seen := {vip: holders(nodes, vip) for vip in vips}) != wanted:
        if time.monotonic() > deadline:
            logs = {host: (directory / "keepalived.log").read_text() for host, (_, directory)
                    in nodes.items()}  # fmt: skip
            pytest.fail(f"VIPs held by {seen}, not all by {sorted(expected)}; logs: {logs}")
        time.sleep(0.2)
