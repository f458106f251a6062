"""BGP VIP mode end to end, with real FRR, nginx and the frr role's health gate, each part in a
network namespace of its own (no container, no VM):

    client --- router (FRR, ECMP) ---+--- edge1 (FRR, nginx, edge-vip-announce)
                                     +--- edge2 (FRR, nginx, edge-vip-announce)

Both edges run frr.conf and edge-vip-announce rendered by Ansible from the role's templates;
the router runs FRR with multipath and the L4 hash (`fib_multipath_hash_policy` 1). Both
edges' routes to the VIP are installed and new connections from the client reach both; an
edge whose nginx stops is withdrawn and the client reaches only the other, then it is back;
an edge whose agent is not ready is announced with its AS path prepended, so the router
prefers the other; nothing but the VIP is ever announced.

The waits are bounded generously for a busy machine and measure nothing; docs/bgp.md says
what the gate's timing gives (about a second with the defaults).
"""

import contextlib
import json
import os
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from role_template import Rendering, render_role_templates
from test_frr_bgp import Speaker, run, wait_for

ROUTER_ASN, EDGE_ASN = 64500, 64600
VIP = "198.51.100.100"
CLIENT, CLIENT_GATEWAY = "192.0.2.2", "192.0.2.1"
# Each edge: its point-to-point link to the router (router's address, edge's address).
EDGES = {"edge1": ("198.51.100.1", "198.51.100.2"), "edge2": ("198.51.100.5", "198.51.100.6")}
# A route of the gate's protocol that is not a VIP: never announced.
DECOY = "198.18.7.0/24"
ROUTE_PROTOCOL = 202
# New connections sent to a pair of healthy edges: all on one is a chance of 2**-63.
CONNECTIONS = 64

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

NGINX_CONFIG = """\
daemon off;
# The test's directory is root's alone: workers that read the readiness file run as root too.
user root;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    server {{
        listen 80;
        listen [::]:80;
        location = /healthz {{ return 200 "ok\\n"; }}
        location / {{ return 200 "{name}\\n"; }}
    }}
    # The agent's readiness: ready while the file `ready` exists.
    server {{
        listen 127.0.0.1:10254;
        location = /readyz {{ root {directory}; try_files /ready =503; }}
    }}
}}
"""


class Edge:
    """An edge node's namespace: FRR (its Speaker), nginx and the health gate."""

    def __init__(self, name: str, namespace: str, directory: Path):
        self.name = name
        self.namespace = namespace
        self.directory = directory
        self.speaker = Speaker(namespace, directory)
        self.nginx: subprocess.Popen | None = None
        self.gate: subprocess.Popen | None = None

    def start_nginx(self) -> None:
        config = self.directory / "nginx.conf"
        config.write_text(NGINX_CONFIG.format(directory=self.directory, name=self.name))
        self.nginx = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, "/usr/sbin/nginx", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "nginx.out").open("w"),
        )
        wait_for(lambda: self.fetch("http://127.0.0.1/healthz") == "ok", f"{self.name} nginx up")

    def stop_nginx(self) -> None:
        self.nginx.terminate()
        self.nginx.wait(timeout=60)
        self.nginx = None

    def start_gate(self, script: Path) -> None:
        self.gate = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, "sh", str(script)],
            stdout=(self.directory / "gate.log").open("w"),
            stderr=subprocess.STDOUT,
        )

    def set_ready(self, ready: bool) -> None:
        marker = self.directory / "ready"
        marker.touch() if ready else marker.unlink()

    def fetch(self, url: str) -> str | None:
        result = subprocess.run(
            ["ip", "netns", "exec", self.namespace, "curl", "-fsS", "--max-time", "5", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout.strip() if result.returncode == 0 else None

    def gate_states(self) -> list[str]:
        log = (self.directory / "gate.log").read_text().splitlines()
        return [json.loads(line)["state"] for line in log if line.startswith("{")]

    def stop(self) -> None:
        for process in (self.gate, self.nginx):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.speaker.stop()


def render_edges(edges: dict[str, Edge], settings: dict[str, dict]) -> dict[str, tuple[Path, Path]]:
    """frr.conf and edge-vip-announce of each of `edges` with its role variables (`settings`,
    by name), as the role renders them (each checked as the role checks it), in one
    ansible-playbook run: {name: (frr.conf, edge-vip-announce)}."""
    inventory = next(iter(edges.values())).directory.parent / "render-hosts.yml"
    hosts = {name: {} for name in edges}
    inventory.write_text(yaml.safe_dump({"all": {"children": {"edge": {"hosts": hosts}}}}))
    templates = (
        ("etc/frr/frr.conf.j2", "vtysh --dryrun --inputfile %s"),
        ("usr/local/libexec/frr/edge-vip-announce.j2", "sh -n %s"),
    )
    renderings = [
        Rendering(template, edge.directory / Path(template).stem, settings[name], name, validate)
        for name, edge in edges.items()
        for template, validate in templates
    ]
    rendered = iter(render_role_templates("frr", renderings, inventory=str(inventory)))
    return {name: (next(rendered), next(rendered)) for name in edges}


def edge_settings(name: str) -> dict:
    router_address, address = EDGES[name]
    return {
        "frr_asn": EDGE_ASN,
        "frr_router_id": address,
        "frr_upstream_peers": [{"address": router_address, "asn": ROUTER_ASN}],
        "frr_vips": [VIP],
        "frr_vip_route_protocol": ROUTE_PROTOCOL,
    }


def router_nexthops(router: str, vip: str = VIP) -> set[str]:
    """The gateways of the router's kernel route to `vip` (one, or ECMP's several)."""
    routes = json.loads(run("ip", "-n", router, "-json", "route", "show", f"{vip}/32"))
    gateways = set()
    for route in routes:
        gateways |= {hop["gateway"] for hop in route.get("nexthops", [])}
        if "gateway" in route:
            gateways.add(route["gateway"])
    return gateways


def edges_reached(client: str) -> dict[str, int]:
    """New connections from the client to the VIP, each from its own source port, by the edge
    that answered."""
    answers: dict[str, int] = {}
    for _ in range(CONNECTIONS):
        result = subprocess.run(
            ["ip", "netns", "exec", client, "curl", "-fsS", "--max-time", "5", f"http://{VIP}/"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        answers[result.stdout.strip()] = answers.get(result.stdout.strip(), 0) + 1
    return answers


def link(
    namespace: str, peer_namespace: str, device: str, address: str, peer_address: str, length: int
) -> None:
    """A veth pair `device` between the two namespaces, an address at each end."""
    run("ip", "-n", namespace, "link", "add", device, "type", "veth", "peer", "peer0")
    run("ip", "-n", namespace, "link", "set", "peer0", "netns", peer_namespace, "name", device)
    for where, own in ((namespace, address), (peer_namespace, peer_address)):
        run("ip", "-n", where, "address", "add", f"{own}/{length}", "dev", device)
        run("ip", "-n", where, "link", "set", device, "up")


def link6(namespace: str, peer_namespace: str, device: str, address: str, peer_address: str):
    """A veth pair `device` between the two namespaces, an IPv6 /64 address at each end
    (nodad: usable at once)."""
    run("ip", "-n", namespace, "link", "add", device, "type", "veth", "peer", "peer0")
    run("ip", "-n", namespace, "link", "set", "peer0", "netns", peer_namespace, "name", device)
    for where, own in ((namespace, address), (peer_namespace, peer_address)):
        run("ip", "-n", where, "-6", "address", "add", f"{own}/64", "dev", device, "nodad")
        run("ip", "-n", where, "link", "set", device, "up")


@contextlib.contextmanager
def wired(
    directory: Path,
    prefix: str,
    links: dict[str, tuple[str, str]],
    client: tuple[str, str],
    router_config: str,
    ipv6: bool = False,
    bfd: bool = False,
) -> Iterator[tuple[Speaker, str, dict[str, Edge]]]:
    """(router, client namespace, edges): namespaces named `prefix`-*, the client behind the
    router (`client`: its address and the router's), each edge on a link of its own to the
    router (`links`: name -> router's address, edge's address), the router's FRR running
    `router_config` with ECMP by the flow's addresses and ports, so new connections spread
    over the edges. The edges' FRR, nginx and gates are the caller's to start; everything
    is stopped and removed at the end."""
    suffix = os.getpid()
    router = Speaker(f"{prefix}-router-{suffix}", directory, bfd=bfd)
    client_namespace = f"{prefix}-client-{suffix}"
    edges = {}
    for name in links:
        (directory / name).mkdir()
        edges[name] = Edge(name, f"{prefix}-{name}-{suffix}", directory / name)
        edges[name].speaker = Speaker(edges[name].namespace, directory / name, bfd=bfd)
    namespaces = [router.name, client_namespace, *(edge.namespace for edge in edges.values())]
    for namespace in namespaces:
        run("ip", "netns", "add", namespace)
    family = ("-6",) if ipv6 else ()
    settings = (
        ("net.ipv6.conf.all.forwarding=1", "net.ipv6.fib_multipath_hash_policy=1")
        if ipv6
        else ("net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1")
    )
    try:
        for namespace in namespaces:
            run("ip", "-n", namespace, "link", "set", "lo", "up")
        for setting in settings:
            run("ip", "netns", "exec", router.name, "sysctl", "-qw", setting)
        client_address, client_gateway = client
        for peer, device, (router_address, address), length in (
            (client_namespace, "client0", (client_gateway, client_address), 24),
            *(
                (edge.namespace, f"edge{index}", links[name], 30)
                for index, (name, edge) in enumerate(edges.items())
            ),
        ):
            if ipv6:
                link6(router.name, peer, device, router_address, address)
            else:
                link(router.name, peer, device, router_address, address, length)
            run("ip", "-n", peer, *family, "route", "add", "default", "via", router_address)
        (directory / "router.conf").write_text(router_config)
        router.start()
        router.configure(directory / "router.conf")
        yield router, client_namespace, edges
    finally:
        for edge in edges.values():
            for process in edge.speaker.processes:  # a test may have frozen one
                process.send_signal(signal.SIGCONT)
            edge.stop()
        router.stop()
        for namespace in namespaces:
            subprocess.run(["ip", "netns", "del", namespace], check=False)


@pytest.fixture
def topology(tmp_path):
    """{router, client, edges, scripts, speaker}: the namespaces wired and addressed, FRR
    running on the router and on both edges (configured), nginx on both edges; the gates not
    started yet."""
    with wired(tmp_path, "edgevip", EDGES, (CLIENT, CLIENT_GATEWAY), ROUTER_CONFIG) as wiring:
        router, client, edges = wiring
        rendered = render_edges(edges, {name: edge_settings(name) for name in edges})
        scripts = {}
        for name, edge in edges.items():
            # Of the gate's protocol but no VIP: the route-map must keep it to the node.
            decoy = ("route", "add", DECOY, "dev", "lo", "proto", str(ROUTE_PROTOCOL))
            run("ip", "-n", edge.namespace, *decoy)
            frr_conf, scripts[name] = rendered[name]
            edge.speaker.start()
            edge.speaker.configure(frr_conf)
            edge.set_ready(True)
            edge.start_nginx()
        yield {
            "router": router.name,
            "client": client,
            "edges": edges,
            "scripts": scripts,
            "speaker": router,
        }


def test_every_healthy_edge_serves_the_vip_and_a_failing_one_leaves(topology):
    router, client, edges = topology["router"], topology["client"], topology["edges"]
    edge1, edge2 = edges["edge1"], edges["edge2"]
    both = {address for _, address in EDGES.values()}
    for name, edge in edges.items():
        edge.start_gate(topology["scripts"][name])

    wait_for(lambda: router_nexthops(router) == both, "the router's ECMP route via both edges")
    # Only the VIP: not the decoy of the gate's protocol, not the edges' links.
    rib = json.loads(topology["speaker"].vtysh("show bgp ipv4 unicast json"))["routes"]
    assert set(rib) == {f"{VIP}/32"}
    assert {path["peerId"] for path in rib[f"{VIP}/32"]} == both
    assert set(edges_reached(client)) == {"edge1", "edge2"}

    # edge1's nginx stops: its required check fails, the gate withdraws the VIP.
    edge1.stop_nginx()
    wait_for(lambda: router_nexthops(router) == {EDGES["edge2"][1]}, "edge1 withdrawn")
    assert set(edges_reached(client)) == {"edge2"}
    assert edge1.gate_states()[-1] == "withdrawn"
    # Withdrawn, edge1 still holds the VIP (its local route): late packets are answered.
    local = run(
        "ip", "-n", edge1.namespace, "route", "show", "table", "local", "proto", str(ROUTE_PROTOCOL)
    )
    assert f"local {VIP} dev lo" in local

    edge1.start_nginx()
    wait_for(lambda: router_nexthops(router) == both, "edge1 announced again")
    assert set(edges_reached(client)) == {"edge1", "edge2"}

    # edge2's agent is not ready: still announced, with its AS path prepended, so the router
    # sends new connections to edge1 only.
    edge2.set_ready(False)
    wait_for(lambda: router_nexthops(router) == {EDGES["edge1"][1]}, "edge2 prepended")
    paths = json.loads(topology["speaker"].vtysh(f"show bgp ipv4 unicast {VIP}/32 json"))["paths"]
    as_paths = {path["peer"]["peerId"]: path["aspath"]["string"] for path in paths}
    assert as_paths == {
        EDGES["edge1"][1]: f"{EDGE_ASN}",
        EDGES["edge2"][1]: f"{EDGE_ASN} " * 3 + f"{EDGE_ASN}",
    }
    assert set(edges_reached(client)) == {"edge1"}

    # No agent ready anywhere (the API server is down): both prepended alike, both serve.
    edge1.set_ready(False)
    wait_for(lambda: router_nexthops(router) == both, "both prepended, ECMP again")
    assert set(edges_reached(client)) == {"edge1", "edge2"}
    for edge in (edge1, edge2):
        edge.set_ready(True)
    wait_for(
        lambda: edge1.gate_states()[-1] == edge2.gate_states()[-1] == "announced", "both announced"
    )
    wait_for(lambda: router_nexthops(router) == both, "ECMP after the agents recover")

    # The gate stopped (as systemd stops it): the node's VIP is withdrawn.
    edge2.gate.terminate()
    edge2.gate.wait(timeout=60)
    wait_for(
        lambda: router_nexthops(router) == {EDGES["edge1"][1]}, "edge2 withdrawn by its gate's stop"
    )
    assert (
        run("ip", "-n", edge2.namespace, "route", "show", "proto", str(ROUTE_PROTOCOL), VIP) == ""
    )
