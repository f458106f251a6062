"""The doctor's `pod routes` check (pod_route_check.py) against a real kernel routing table: a
network namespace whose routes the test sets, as BGP (roles/frr) or an admin would, with a
default route that must not count as a route to the pods."""

import json
import os
import subprocess
import sys

import pytest

from edgeagent import pod_route_check

NODES = [
    {"metadata": {"name": "node-a"}, "spec": {"podCIDRs": ["198.18.1.0/24"]}},
    {"metadata": {"name": "node-b"}, "spec": {"podCIDR": "198.18.2.0/24"}},
    {"metadata": {"name": "node-c"}, "spec": {"podCIDRs": ["not-a-cidr"]}},
]
GATEWAY, EDGE = "198.51.100.1", "198.51.100.2"


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


def test_the_most_specific_live_route_counts_and_the_default_does_not():
    default = {"dst": "default", "gateway": GATEWAY, "dev": "eth0"}
    assert pod_route_check.covering_route([default]) is None
    routes = [
        default,
        {"dst": "198.18.0.0/16", "type": "blackhole"},
        {"dst": "198.18.1.0/24", "dev": "eth0", "protocol": "kernel"},
        {"dst": "198.18.1.0/26", "gateway": GATEWAY, "dev": "eth0", "protocol": "bgp"},
    ]
    route = pod_route_check.covering_route(routes)
    assert route == pod_route_check.Route("198.18.1.0/26", f"via {GATEWAY} dev eth0 proto bgp")
    assert pod_route_check.covering_route(routes[:2]) is None
    assert pod_route_check.first_address("198.18.1.0/24") == "198.18.1.1"
    assert pod_route_check.first_address("198.18.1.7/32") == "198.18.1.7"


def test_nodes_without_pod_cidrs_leave_nothing_to_look_up():
    ok, detail = pod_route_check.assess([{"metadata": {"name": "n"}, "spec": {}}], "endpoints")
    assert ok and "no Node names spec.podCIDRs" in detail


@pytest.fixture
def namespace():
    """A namespace with an interface on 198.51.100.0/24 and a default route through it."""
    name = f"edgeroutes-{os.getpid()}"
    run("ip", "netns", "add", name)
    try:
        run("ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "eth1")
        run("ip", "-n", name, "address", "add", f"{EDGE}/24", "dev", "eth0")
        for device in ("eth0", "eth1", "lo"):
            run("ip", "-n", name, "link", "set", device, "up")
        run("ip", "-n", name, "route", "add", "default", "via", GATEWAY)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def assess_in(namespace: str, mode: str) -> tuple[bool, str]:
    """pod_route_check.assess run in the namespace, with its real `ip` lookups."""
    script = (
        "import json, sys; from edgeagent import pod_route_check; "
        "print(json.dumps(pod_route_check.assess(json.loads(sys.argv[1]), sys.argv[2])))"
    )
    output = run(
        *("ip", "netns", "exec", namespace, sys.executable, "-c", script),
        *(json.dumps(NODES), mode),
    )
    ok, detail = json.loads(output)
    return ok, detail


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_the_check_names_the_pod_cidrs_without_a_route(namespace):
    ok, detail = assess_in(namespace, "endpoints")
    assert not ok
    assert "no route to the pod network 198.18.1.0/24 (node-a), 198.18.2.0/24 (node-b)" in detail
    assert pod_route_check.NO_ROUTE_ADVICE in detail
    # The nodeport mode never sends to a pod IP: the same state is no failure there.
    ok, detail = assess_in(namespace, "nodeport")
    assert ok and detail.endswith("not needed in the nodeport backend mode")

    # A route learned by BGP for node-a's pods (a Calico block inside its podCIDR).
    run("ip", "-n", namespace, "route", "add", "198.18.1.0/26", "via", GATEWAY, "proto", "bgp")
    ok, detail = assess_in(namespace, "endpoints")
    assert not ok
    assert "no route to the pod network 198.18.2.0/24 (node-b)" in detail
    assert f"198.18.1.0/24 (node-a) by 198.18.1.0/26 via {GATEWAY} dev eth0 proto bgp" in detail

    run("ip", "-n", namespace, "route", "add", "198.18.2.0/24", "via", GATEWAY, "proto", "bgp")
    ok, detail = assess_in(namespace, "endpoints")
    assert ok and detail.startswith("routed: 198.18.1.0/24 (node-a) by 198.18.1.0/26")
    assert "not routing" in detail
