"""Draining an edge node in BGP mode (edge_vip_mode: bgp) with the frr role's own drain and
undrain entry points, run by ansible-playbook inside the node's network namespace against real
FRR, nginx and the role's health gate (as test_frr_vip_ecmp.py wires them):

    client --- router (FRR, ECMP) ---+--- edge1 (FRR, nginx, edge-vip-announce)
                                     +--- edge2 (FRR, nginx, edge-vip-announce)

The drain writes the mark the gate honours: the router loses edge1's path, and the drain waits
for edge1's established connection to the VIP (a client's idle keep-alive) to end, failing with
the node still drained when it does not within frr_vip_drain_timeout. The mark survives a
restart of the gate; the undrain announces again and waits for FRR to advertise it; the prepend
drain keeps edge1 announced with its AS path prepended; check mode changes nothing.

Each edge is a host of a local inventory whose Python runs in the edge's namespace, with a vtysh
wrapper on PATH that adds FRR's pathspace (-N). The same inventory runs lvs_pool's leave and
rejoin, which playbooks/edge.yml runs around a node with changes pending: in BGP mode they
drain the node through the frr role when its peer announces the VIP, and bring it back, and
leave an operator's prepend drain as it is.

The namespaces, FRR and nginx are built once for the module; each test starts from a fresh
node's state (no drain mark, no applied digest, the gates restarted and announcing)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from role_template import REPO
from test_frr_bgp import run, wait_for
from test_frr_vip_ecmp import ROUTER_ASN, Edge, render_edges, wired
from test_frr_vip_ecmp import router_nexthops as vip_nexthops

EDGE_ASN = 64600
VIP = "198.18.183.100"
CLIENT, CLIENT_GATEWAY = "198.18.181.2", "198.18.181.1"
# Each edge: its point-to-point link to the router (router's address, edge's address).
EDGES = {"edge1": ("198.18.182.1", "198.18.182.2"), "edge2": ("198.18.182.5", "198.18.182.6")}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="network namespaces need root (lab/host-packages.sh installs frr)"
)

ROUTER_CONFIG = textwrap.dedent(f"""\
    router bgp {ROUTER_ASN}
     bgp router-id {CLIENT_GATEWAY}
     no bgp ebgp-requires-policy
     timers bgp 3 9
     neighbor {EDGES["edge1"][1]} remote-as {EDGE_ASN}
     neighbor {EDGES["edge2"][1]} remote-as {EDGE_ASN}
     address-family ipv4 unicast
      maximum-paths 8
     exit-address-family
    exit
    """)

# A client's connection that stays open (an idle keep-alive: nginx keeps it 600 s), printing
# the edge that answered, then "closed" once the edge closes it.
HELD_CONNECTION = textwrap.dedent(f"""\
    import socket
    connection = socket.create_connection(("{VIP}", 80), timeout=600)
    connection.sendall(b"GET / HTTP/1.1\\r\\nHost: edge\\r\\n\\r\\n")
    answer = connection.recv(4096).decode()
    print(answer.rsplit("\\n", 2)[-2], flush=True)
    while connection.recv(4096):
        pass
    print("closed", flush=True)
    """)


def edge_settings(name: str, directory: Path) -> dict:
    router_address, address = EDGES[name]
    return {
        "frr_asn": EDGE_ASN,
        "frr_router_id": address,
        "frr_upstream_peers": [{"address": router_address, "asn": ROUTER_ASN}],
        "frr_vips": [VIP],
        "frr_vip_drain_file": str(directory / "vip-drain"),
    }


def router_nexthops(router: str) -> set[str]:
    return vip_nexthops(router, VIP)


def inventory(edges: dict[str, Edge], directory: Path) -> Path:
    """Both edges as hosts of group edge in BGP mode, each reached by a local connection whose
    Python runs in its namespace (modules see its routes and sockets) with a vtysh on PATH that
    reaches its FRR (the pathspace)."""
    hosts = {}
    for name, edge in edges.items():
        wrappers = edge.directory / "bin"
        wrappers.mkdir(exist_ok=True)
        vtysh = wrappers / "vtysh"
        vtysh.write_text(f'#!/bin/sh\nexec /usr/bin/vtysh -N {edge.speaker.name} "$@"\n')
        python = wrappers / "python"
        in_namespace = f"ip netns exec {edge.namespace} {sys.executable}"
        python.write_text(f'#!/bin/sh\nPATH={wrappers}:$PATH exec {in_namespace} "$@"\n')
        for wrapper in (vtysh, python):
            wrapper.chmod(0o755)
        hosts[name] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": str(python),
            "edge_vip_mode": "bgp",
            "lvs_pool_applied_digest_file": str(edge.directory / "applied-digest"),
            **edge_settings(name, edge.directory),
        }
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"edge": {"hosts": hosts}}}}))
    return path


def run_tasks(
    edges: dict[str, Edge], host: str, role: str, entry_point: str, *extra: str
) -> subprocess.CompletedProcess:
    """`role`'s tasks_from `entry_point` on `host`, one of `edges`, by ansible-playbook."""
    directory = edges[host].directory
    play = [
        {
            "hosts": host,
            "gather_facts": False,
            "serial": 1,
            "tasks": [
                {
                    "ansible.builtin.include_role": {
                        "name": f"edgeops.edge.{role}",
                        "tasks_from": entry_point,
                    }
                }
            ],
        }
    ]
    playbook = directory / f"{role}-{entry_point}.yml"
    playbook.write_text(yaml.safe_dump(play))
    environment = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "NO_COLOR": "1"}
    hosts = inventory(edges, directory.parent)
    return subprocess.run(
        [
            *(str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(hosts)),
            *(*extra, str(playbook)),
        ],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=600,
    )


def run_entry_point(edges: dict[str, Edge], entry_point: str, *extra: str):
    """The frr role's `entry_point` (drain, undrain) on edge1."""
    return run_tasks(edges, "edge1", "frr", entry_point, *extra)


def recap(result: subprocess.CompletedProcess) -> str:
    return result.stdout.rsplit("PLAY RECAP", 1)[-1]


def hold_connection_to(client: str, edge: str, directory: Path) -> subprocess.Popen:
    """A held client connection that the router's ECMP sent to `edge` (new ones until then)."""
    (directory / "held.py").write_text(HELD_CONNECTION)
    for _ in range(64):
        held = subprocess.Popen(
            ["ip", "netns", "exec", client, sys.executable, str(directory / "held.py")],
            stdout=subprocess.PIPE,
            text=True,
        )
        if held.stdout.readline().strip() == edge:
            return held
        held.kill()
        held.wait()
    pytest.fail(f"no connection of 64 reached {edge}")


@pytest.fixture(scope="module")
def wiring(tmp_path_factory):
    """{router, client, edges, both}: FRR on the router and both edges, nginx and the gates
    running, the router's ECMP route to the VIP via both edges. Built once for this module's
    tests (its setup is most of a test's time); `topology` gives each its starting state."""
    directory = tmp_path_factory.mktemp("edgedrain")
    with wired(directory, "edgedrain", EDGES, (CLIENT, CLIENT_GATEWAY), ROUTER_CONFIG) as wiring:
        router, client, edges = wiring
        settings = {name: edge_settings(name, edge.directory) for name, edge in edges.items()}
        rendered = render_edges(edges, settings)
        for name, edge in edges.items():
            frr_conf = rendered[name][0]
            edge.speaker.start()
            edge.speaker.configure(frr_conf)
            edge.set_ready(True)
            edge.start_nginx()
        both = {address for _, address in EDGES.values()}
        yield {"router": router, "client": client, "edges": edges, "both": both}


@pytest.fixture
def topology(wiring):
    """The wiring as a fresh node has it: no drain mark, no applied digest, each edge's gate
    started anew (which puts back the VIP's local route) and announcing, the router's ECMP
    route via both edges."""
    router, edges = wiring["router"].name, wiring["edges"]
    for edge in edges.values():
        if edge.gate is not None and edge.gate.poll() is None:
            edge.gate.terminate()
            edge.gate.wait(timeout=60)
        for state in ("vip-drain", "applied-digest"):
            (edge.directory / state).unlink(missing_ok=True)
    # The stopped gates' withdrawals have reached the router: what it has next is the new ones'.
    wait_for(lambda: router_nexthops(router) == set(), "both gates' routes withdrawn")
    for edge in edges.values():
        edge.start_gate(edge.directory / "edge-vip-announce")
    wait_for(lambda: router_nexthops(router) == wiring["both"], "ECMP via both edges")
    return wiring


def test_drain_withdraws_or_prepends_waits_for_connections_and_undrain_announces(
    topology, tmp_path
):
    router, client, edges = topology["router"].name, topology["client"], topology["edges"]
    edge1 = edges["edge1"]
    only_edge2 = {EDGES["edge2"][1]}
    held = hold_connection_to(client, "edge1", tmp_path)

    # The held connection outlasts the drain's bound: the drain fails, the node stays out.
    result = run_entry_point(edges, "drain", "-e", "frr_vip_drain_timeout=3")
    assert result.returncode != 0, result.stdout
    assert "Wait for the node's established connections to the VIPs to end" in result.stdout
    assert router_nexthops(router) == only_edge2
    assert edge1.gate_states()[-1] == "withdrawn"
    assert (edge1.directory / "vip-drain").read_text() == "withdraw\n"

    # nginx reloaded: its old workers close their idle connections; the drain ends now, and
    # changes nothing the first run did not.
    run("ip", "netns", "exec", edge1.namespace, "/usr/sbin/nginx", "-c",
        str(edge1.directory / "nginx.conf"), "-s", "reload")  # fmt: skip
    assert held.stdout.readline().strip() == "closed"
    held.wait(timeout=60)
    result = run_entry_point(edges, "drain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "changed=0" in recap(result), result.stdout

    # The gate restarted (as systemd restarts it) reads the mark again: still withdrawn.
    edge1.gate.terminate()
    edge1.gate.wait(timeout=60)
    edge1.start_gate(edge1.directory / "edge-vip-announce")
    wait_for(lambda: edge1.gate_states() == ["withdrawn"], "the restarted gate's first state")
    assert router_nexthops(router) == only_edge2

    result = run_entry_point(edges, "undrain")
    assert result.returncode == 0, result.stdout + result.stderr
    # Undrain returns once FRR advertises the VIP: the router has the path at once or soon.
    wait_for(lambda: router_nexthops(router) == topology["both"], "edge1 back in the ECMP")
    assert edge1.gate_states()[-1] == "announced"

    # Check mode: the mark is not written, nothing is waited for, the node keeps serving.
    result = run_entry_point(edges, "drain", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (edge1.directory / "vip-drain").read_text() == "announce\n"
    assert router_nexthops(router) == topology["both"]

    # The prepend drain: still announced, behind edge2.
    result = run_entry_point(edges, "drain", "-e", "frr_vip_drain_mode=prepend")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: router_nexthops(router) == only_edge2, "edge1 prepended")
    paths = json.loads(topology["router"].vtysh(f"show bgp ipv4 unicast {VIP}/32 json"))["paths"]
    as_paths = {path["peer"]["peerId"]: path["aspath"]["string"] for path in paths}
    assert as_paths == {
        EDGES["edge1"][1]: " ".join([str(EDGE_ASN)] * 4),
        EDGES["edge2"][1]: str(EDGE_ASN),
    }
    result = run_entry_point(edges, "undrain")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: router_nexthops(router) == topology["both"], "edge1 back in the ECMP")


def test_edge_yml_leave_and_rejoin_drain_a_bgp_node_and_emptied_vips_leave_no_gate(
    topology, tmp_path
):
    router, edges = topology["router"].name, topology["edges"]
    digest = edges["edge1"].directory / "applied-digest"
    pending = ("-e", "lvs_pool_applied_digest=new")

    result = run_tasks(edges, "edge1", "lvs_pool", "leave", *pending)
    assert result.returncode == 0, result.stdout + result.stderr
    assert digest.read_text() == "left bgp\n"
    assert router_nexthops(router) == {EDGES["edge2"][1]}

    result = run_tasks(edges, "edge1", "lvs_pool", "rejoin", *pending)
    assert result.returncode == 0, result.stdout + result.stderr
    assert digest.read_text() == "new\n"
    wait_for(lambda: router_nexthops(router) == topology["both"], "edge1 back in the ECMP")

    # Nothing new: the node stays in the path.
    result = run_tasks(edges, "edge1", "lvs_pool", "leave", *pending)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "changed=0" in recap(result), result.stdout
    assert digest.read_text() == "new\n"

    # With its only peer out of the path (edge2 drained), edge1 has nowhere to send its
    # traffic: a pending run changes it in place.
    assert run_tasks(edges, "edge2", "frr", "drain").returncode == 0
    result = run_tasks(edges, "edge1", "lvs_pool", "leave", "-e", "lvs_pool_applied_digest=newer")
    assert result.returncode == 0, result.stdout + result.stderr
    assert digest.read_text() == "new\n"
    assert router_nexthops(router) == {EDGES["edge1"][1]}

    # edge2's frr_vips emptied: the frr role's tasks for it (config.yml, as uninstall.yml),
    # with the gate stopped as systemd stops it, remove the VIPs' local routes and the gate's
    # files (stand-ins in the test's directory here); again, nothing changes.
    edge2 = edges["edge2"]
    edge2.gate.terminate()
    edge2.gate.wait(timeout=60)
    local = ("ip", "-n", edge2.namespace, "route", "show", "table", "local", "proto", "202")
    assert f"local {VIP} dev lo" in run(*local)
    files = [tmp_path / "edge-vip-announce.service", tmp_path / "libexec"]
    for stand_in in files:
        stand_in.touch()
    gate_files = ("-e", json.dumps({"__frr_vip_gate_files": [str(path) for path in files]}))
    for changes in ("changed=2", "changed=0"):
        result = run_tasks(topology["edges"], "edge2", "frr", "vip_gate_absent", *gate_files)
        assert result.returncode == 0, result.stdout + result.stderr
        assert changes in recap(result), result.stdout
    assert run(*local) == ""
    assert not any(path.exists() for path in files)


def test_a_prepend_drained_node_stays_drained_across_leave_and_rejoin(topology):
    """edge.yml's leave and rejoin (lvs_pool) beside an operator's drain: a node that
    playbooks/drain.yml prepended (frr_vip_drain_mode=prepend) still announces its VIPs, but is
    not in the path for the leave to take out and the rejoin to bring back: its drain mark stays
    until undrain.yml. (Before, the rejoin wrote "announce" over it: the node took full traffic
    again in the middle of its maintenance.)"""
    router, edges = topology["router"].name, topology["edges"]
    mark = edges["edge1"].directory / "vip-drain"
    digest = edges["edge1"].directory / "applied-digest"
    pending = ("-e", "lvs_pool_applied_digest=new")
    result = run_entry_point(edges, "drain", "-e", "frr_vip_drain_mode=prepend")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: router_nexthops(router) == {EDGES["edge2"][1]}, "edge1 prepended")

    for entry_point in ("leave", "rejoin"):
        result = run_tasks(edges, "edge1", "lvs_pool", entry_point, *pending)
        assert result.returncode == 0, result.stdout + result.stderr
        assert mark.read_text() == "prepend\n", (entry_point, result.stdout)
    assert digest.read_text() == "new\n"
    assert router_nexthops(router) == {EDGES["edge2"][1]}

    result = run_entry_point(edges, "undrain")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: router_nexthops(router) == topology["both"], "edge1 back in the ECMP")
