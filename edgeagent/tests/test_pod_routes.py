"""`edgeagent routes` (pod_routes.py): the Nodes' podCIDRs via their InternalIPs, judged
on the pure core, then installed by the real kernel in a network namespace of the test's
own, with the API emulator running inside it."""

import ipaddress
import pathlib
import textwrap

import yaml
from agentlab import in_network_namespace
from edgeagent.pod_routes import ROUTE_PROTOCOL, Refusal, Route, desired_routes

ROLE_VARS = pathlib.Path(__file__).parents[2] / "roles" / "edgeagent" / "vars" / "main.yml"

NODES_NETWORK = ipaddress.ip_network("198.18.6.0/24")
VIP = ipaddress.ip_address("198.51.100.100")


def node(name, cidrs, address="198.18.6.11", *, legacy=False):
    spec = {"podCIDR": cidrs[0]} if legacy else {"podCIDRs": cidrs}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": spec,
        "status": {"addresses": [{"type": "InternalIP", "address": address}]},
    }


def judged(nodes, allowed=()):
    return desired_routes(nodes, [NODES_NETWORK], [VIP], [ipaddress.ip_network(a) for a in allowed])


def test_each_nodes_pod_cidr_goes_via_its_internal_ip():
    routes, refusals = judged(
        [node("b", ["198.18.65.0/24"], "198.18.6.12"), node("a", ["198.18.64.0/24"], legacy=True)]
    )
    assert routes == (
        Route("198.18.64.0/24", "198.18.6.11"),
        Route("198.18.65.0/24", "198.18.6.12"),
    )
    assert refusals == ()


def test_a_node_behind_a_router_is_left_to_bgp():
    routes, refusals = judged([node("far", ["198.18.64.0/24"], "198.19.9.9")])
    assert routes == ()
    assert refusals == (
        Refusal(
            "far",
            "198.18.64.0/24",
            "its InternalIP 198.19.9.9 is on no network of this edge node (use BGP)",
        ),
    )


def test_hostile_pod_cidrs_are_refused_with_their_reason():
    routes, refusals = judged(
        [
            node("a-wide", ["0.0.0.0/0"]),
            node("b-short", ["10.0.0.0/7"]),
            node("c-vip", ["198.51.100.0/24"]),
            node("d-link", ["198.18.6.128/25"]),
            node("e-junk", ["not-a-cidr"]),
            node("f-ok", ["198.18.64.0/24"]),
            node("g-overlap", ["198.18.64.0/23"], "198.18.6.13"),
            node("h-v6", ["2001:db8:1::/64"]),
        ]
    )
    assert routes == (Route("198.18.64.0/24", "198.18.6.11"),)
    assert {r.node: r.reason for r in refusals} == {
        "a-wide": "shorter than /8",
        "b-short": "shorter than /8",
        "c-vip": "contains a VIP of this edge",
        "d-link": "overlaps a network this edge node is attached to",
        "g-overlap": "overlaps Node f-ok's podCIDR 198.18.64.0/24",
        "h-v6": "the Node has no IPv6 InternalIP",
    }


def test_backend_networks_bound_the_routes():
    routes, refusals = judged(
        [node("a", ["198.18.64.0/24"]), node("b", ["198.18.200.0/24"], "198.18.6.12")],
        allowed=["198.18.64.0/18"],
    )
    assert routes == (Route("198.18.64.0/24", "198.18.6.11"),)
    assert refusals == (Refusal("b", "198.18.200.0/24", "outside --backend-networks"),)


# In a namespace of its own: a veth interface on the Nodes' network, the emulator on its
# loopback, a route of another tool to a podCIDR-sized network that must survive.
SCENARIO = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from kubeemu.testing import EmulatorThread
    import kubernetes

    def ip(*args):
        return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout

    def ours():
        shown = json.loads(ip("-json", "route", "show", "proto", "201"))
        return sorted([r["dst"], r["gateway"], r["metric"]] for r in shown)

    def node(name, cidr, address):
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "spec": {"podCIDRs": [cidr]},
                "status": {"addresses": [{"type": "InternalIP", "address": address}]}}

    ip("link", "set", "lo", "up")
    ip("link", "add", "nodes0", "type", "veth", "peer", "name", "nodes1")
    ip("addr", "add", "198.18.6.1/24", "dev", "nodes0")
    ip("link", "set", "nodes0", "up")
    ip("link", "set", "nodes1", "up")
    ip("route", "add", "198.18.99.0/24", "via", "198.18.6.99", "proto", "static")
    with EmulatorThread() as api:
        kubeconfig = sys.argv[1]
        api.write_kubeconfig(kubeconfig)
        core = kubernetes.client.CoreV1Api(api.api_client())
        for each in (
            node("one", "198.18.64.0/24", "198.18.6.11"),
            node("two", "198.18.65.0/24", "198.18.6.12"),
            node("evil", "0.0.0.0/1", "198.18.6.13"),
        ):
            core.create_node(each)
            core.replace_node_status(each["metadata"]["name"], each)
        cli = "import sys; from edgeagent.cli import main; sys.exit(main(sys.argv[1:]))"
        routes = [sys.executable, "-c", cli, "routes", "--kubeconfig", kubeconfig]
        once = subprocess.run([*routes, "--once"], capture_output=True, text=True)
        steps = {"once": [once.returncode, ours()]}
        # The watching daemon: a Node gone and one moved reach the table.
        daemon = subprocess.Popen([*routes, "--resync", "1"], stderr=subprocess.PIPE, text=True)
        core.delete_node("two")
        core.replace_node_status("one", node("one", "198.18.64.0/24", "198.18.6.21"))
        deadline = time.monotonic() + 60
        while ours() != [["198.18.64.0/24", "198.18.6.21", 1000]] and time.monotonic() < deadline:
            time.sleep(0.2)
        steps["watched"] = ours()
        subprocess.run(["ip", "route", "delete", "198.18.64.0/24", "proto", "201"])
        deadline = time.monotonic() + 60
        while not ours() and time.monotonic() < deadline:
            time.sleep(0.5)
        steps["restored"] = ours()
        daemon.terminate()
        steps["exit"] = daemon.wait(30)
        steps["log"] = daemon.stderr.read()
        steps["other"] = ip("route", "show", "198.18.99.0/24")
        steps["once_log"] = once.stderr
    print(json.dumps(steps))
    """
)


def test_routes_follow_the_nodes_in_a_real_routing_table(tmp_path):
    steps = in_network_namespace(SCENARIO, str(tmp_path / "kubeconfig"), timeout=300)
    assert steps["once"] == [
        0,
        [["198.18.64.0/24", "198.18.6.11", 1000], ["198.18.65.0/24", "198.18.6.12", 1000]],
    ], steps["once_log"]
    assert "0.0.0.0/1" in steps["once_log"] and "shorter than /8" in steps["once_log"]
    assert steps["watched"] == [["198.18.64.0/24", "198.18.6.21", 1000]], steps["log"]
    # A route deleted by hand comes back within the resync.
    assert steps["restored"] == [["198.18.64.0/24", "198.18.6.21", 1000]], steps["log"]
    assert steps["exit"] == 0
    assert "198.18.6.99" in steps["other"]


def test_the_role_removes_the_routes_of_the_protocol_the_command_uses():
    role_vars = yaml.safe_load(ROLE_VARS.read_text())
    assert role_vars["__edgeagent_route_protocol"] == ROUTE_PROTOCOL
