"""An IPv6 VIP in BGP mode, end to end, with real FRR (bgpd, bfdd), nginx and the frr role's
health gate in network namespaces, over IPv6 sessions only (as test_frr_vip_ecmp.py for IPv4):

    client --- router (FRR, ECMP, BFD) ---+--- edge1 (FRR, nginx, edge-vip-announce)
                                          +--- edge2 (FRR, nginx, edge-vip-announce)

The VIP /128 is local on each edge's lo and announced over address-family ipv6 unicast; the
router installs both paths and new connections reach both edges; an edge whose nginx stops is
withdrawn, one whose agent is not ready is prepended. A frozen edge (its FRR stopped with
SIGSTOP: no BFD packet, its BGP session silent) is dropped by BFD: the BGP hold time here is
600 s, longer than any wait of the test, so only BFD can have taken its path away, and the
router says so (its last notification: Cease/BFD Down).
"""

import json
import os
import signal
import subprocess
import textwrap

import pytest
from test_frr_bgp import run, wait_for
from test_frr_vip_ecmp import ROUTER_ASN, render_edges, wired

EDGE_ASN = 64600
VIP = "2001:db8:183::100"
CLIENT, CLIENT_GATEWAY = "2001:db8:181::2", "2001:db8:181::1"
# Each edge: its link to the router (router's address, edge's address, router-id).
EDGES = {
    "edge1": ("2001:db8:182:1::1", "2001:db8:182:1::2", "198.18.182.2"),
    "edge2": ("2001:db8:182:2::1", "2001:db8:182:2::2", "198.18.182.6"),
}
# Long enough that a path that goes within the test's waits went by BFD, not the hold time.
HOLD_TIME = 600
CONNECTIONS = 32

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="network namespaces need root (lab/host-packages.sh installs frr)"
)

ROUTER_CONFIG = textwrap.dedent(f"""\
    bfd
     profile edges
      receive-interval 300
      transmit-interval 300
      detect-multiplier 3
     exit
    exit
    router bgp {ROUTER_ASN}
     bgp router-id 198.18.181.1
     no bgp ebgp-requires-policy
     no bgp default ipv4-unicast
     timers bgp {HOLD_TIME // 3} {HOLD_TIME}
     neighbor {EDGES["edge1"][1]} remote-as {EDGE_ASN}
     neighbor {EDGES["edge1"][1]} bfd profile edges
     neighbor {EDGES["edge1"][1]} timers connect 5
     neighbor {EDGES["edge2"][1]} remote-as {EDGE_ASN}
     neighbor {EDGES["edge2"][1]} bfd profile edges
     neighbor {EDGES["edge2"][1]} timers connect 5
     address-family ipv6 unicast
      neighbor {EDGES["edge1"][1]} activate
      neighbor {EDGES["edge2"][1]} activate
      maximum-paths 8
     exit-address-family
    exit
    """)


def edge_settings(name: str) -> dict:
    router_address, _, router_id = EDGES[name]
    return {
        "frr_asn": EDGE_ASN,
        "frr_router_id": router_id,
        "frr_upstream_peers": [{"address": router_address, "asn": ROUTER_ASN, "bfd": True}],
        "frr_vips": [VIP],
        "frr_bgp_keepalive": HOLD_TIME // 3,
        "frr_bgp_holdtime": HOLD_TIME,
    }


def router_devices(router: str) -> set[str]:
    """The router's devices of its kernel route to the VIP (the edges' links: ECMP's several)."""
    routes = json.loads(run("ip", "-n", router, "-6", "-json", "route", "show", f"{VIP}/128"))
    devices = set()
    for route in routes:
        devices |= {hop["dev"] for hop in route.get("nexthops", [])}
        if "dev" in route:
            devices.add(route["dev"])
    return devices


def edges_reached(client: str) -> set[str]:
    answers = set()
    for _ in range(CONNECTIONS):
        result = subprocess.run(
            ["ip", "netns", "exec", client, "curl", "-gfsS", "--max-time", "5", f"http://[{VIP}]/"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        answers.add(result.stdout.strip())
    return answers


@pytest.fixture
def topology(tmp_path):
    links = {
        name: (router_address, address) for name, (router_address, address, _) in EDGES.items()
    }
    client = (CLIENT, CLIENT_GATEWAY)
    with wired(tmp_path, "edgevip6", links, client, ROUTER_CONFIG, ipv6=True, bfd=True) as wiring:
        router, client, edges = wiring
        rendered = render_edges(edges, {name: edge_settings(name) for name in edges})
        for name, edge in edges.items():
            frr_conf, gate = rendered[name]
            edge.speaker.start()
            edge.speaker.configure(frr_conf)
            edge.set_ready(True)
            edge.start_nginx()
            edge.start_gate(gate)
        yield {"router": router, "client": client, "edges": edges}


def test_an_ipv6_vip_is_announced_by_every_healthy_edge_and_bfd_drops_a_frozen_one(topology):
    router, client, edges = topology["router"], topology["client"], topology["edges"]
    edge1, edge2 = edges["edge1"], edges["edge2"]
    both = {"edge0", "edge1"}  # the router's links to edge1 and edge2

    wait_for(lambda: router_devices(router.name) == both, "the router's ECMP route via both")
    rib = json.loads(router.vtysh("show bgp ipv6 unicast json"))["routes"]
    assert set(rib) == {f"{VIP}/128"}
    # Local on lo, not an address: the gate's route is what FRR announces.
    local = run(
        "ip", "-n", edge1.namespace, "-6", "route", "show", "table", "local", "proto", "202"
    )
    assert f"local {VIP} dev lo" in local
    assert edges_reached(client) == {"edge1", "edge2"}

    edge1.stop_nginx()
    wait_for(lambda: router_devices(router.name) == {"edge1"}, "edge1 withdrawn")
    assert edges_reached(client) == {"edge2"}
    edge1.start_nginx()
    wait_for(lambda: router_devices(router.name) == both, "edge1 announced again")

    edge2.set_ready(False)
    wait_for(lambda: router_devices(router.name) == {"edge0"}, "edge2 prepended")
    paths = json.loads(router.vtysh(f"show bgp ipv6 unicast {VIP}/128 json"))["paths"]
    assert sorted(path["aspath"]["string"] for path in paths) == [
        f"{EDGE_ASN}",
        " ".join([str(EDGE_ASN)] * 4),
    ]
    edge2.set_ready(True)
    wait_for(lambda: router_devices(router.name) == both, "edge2 announced again")

    # edge2 frozen: silent, its session not closed. BFD takes its path away.
    for process in edge2.speaker.processes:
        process.send_signal(signal.SIGSTOP)
    wait_for(lambda: router_devices(router.name) == {"edge0"}, "edge2 dropped by BFD")
    neighbour = EDGES["edge2"][1]
    state = json.loads(router.vtysh(f"show bgp neighbors {neighbour} json"))[neighbour]
    assert state["lastNotificationReason"] == "Cease/BFD Down", state
    assert state["peerBfdInfo"]["status"] == "Down", state
    assert edges_reached(client) == {"edge1"}
    for process in edge2.speaker.processes:
        process.send_signal(signal.SIGCONT)
    wait_for(lambda: router_devices(router.name) == both, "edge2 back after the freeze")
