"""Real LVS on the VM lab, from the host (the client of the VIPs), in both topologies of
inventory/vm-lab: lvs_a (separate tiers, LVS-DR, sync daemon) and lvs_b (co-located, firewall
marks). Runs after converge and side_effect.yml (a rolling upgrade under load, which checks
its own losses).

Each test writes its figures to reports/vm-lab/<test>-<topology>.json; docs/failover.md
("Real LVS (VM lab)") quotes them. Timing bounds here are bounds on waiting, with room for
emulation: the figures are measured, not asserted.
"""

import http.client
import json
import time
from collections import Counter

import pytest
import vmlab

TOPOLOGIES = vmlab.topologies()
# Settling time for what converges asynchronously (VRRP election, first checks).
SETTLE_SECONDS = 60
REQUESTS = 40


def in_the_pool(topology: vmlab.Topology) -> bool:
    """Some director holds the VIP and gives every real server its weight."""
    director = vmlab.current_holder(topology)
    return bool(director) and all(
        row[0] > 0 for row in vmlab.ipvs_rows(topology, director).values()
    )


@pytest.fixture(params=sorted(TOPOLOGIES), ids=sorted(TOPOLOGIES))
def topology(request):
    topology = TOPOLOGIES[request.param]
    vmlab.wait_for(lambda: in_the_pool(topology), SETTLE_SECONDS, period=1)
    return topology


def get(vip: str, path: str = "/", host: str = "web1") -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection(vip, 80, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host, "Connection": "close"})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def balanced(topology: vmlab.Topology) -> bool:
    """wlc would alternate between the real servers within REQUESTS new connections: their
    loads (active x 256 + inactive connections; inactive ones count for minutes after their
    FIN) differ by less than half of that."""
    loads = [a * 256 + i for _, a, i in vmlab.ipvs_rows(topology, vmlab.holder(topology)).values()]
    return max(loads) - min(loads) < REQUESTS / 2


def test_new_connections_spread_across_every_nginx(topology):
    # After side_effect's rolling upgrade the node that served alone holds hundreds more
    # inactive connections, and wlc rightly sends every new one to the other until the loads
    # meet: first even them out, then count.
    for _ in range(100):
        if balanced(topology):
            break
        for _ in range(REQUESTS // 2):
            get(topology.vip)
    else:
        pytest.fail(f"{topology.vip}: the real servers' loads never evened out")
    nodes = Counter()
    for _ in range(REQUESTS):
        status, headers, body = get(topology.vip)
        assert status == 200 and body.startswith(b"web1 ")
        nodes[headers["x-edge-node"]] += 1
    vmlab.record_figures(f"spread-{topology.name}", dict(nodes))
    assert set(nodes) == set(topology.real_servers), nodes
    # wlc on short connections: near even; a fifth of the share is the floor.
    assert min(nodes.values()) >= REQUESTS / len(topology.real_servers) / 5, nodes


def test_the_client_address_reaches_the_backend(topology):
    status, _, body = get(topology.vip, "/headers")
    assert status == 200
    headers = json.loads(body)["headers"]
    # LVS-DR forwards the client's packets unchanged: nginx sees the host's address.
    assert headers["X-Real-IP"] == vmlab.CLIENT_ADDRESS, headers
    assert headers["X-Forwarded-For"] == vmlab.CLIENT_ADDRESS, headers


def test_a_failing_real_server_leaves_the_pool_and_comes_back(topology):
    # The last real server: in lvs_b the backup director, so the VIP stays where it is.
    victim = topology.real_servers[-1]
    address = topology.address(victim)
    director = vmlab.holder(topology)

    def weight() -> int:
        return vmlab.ipvs_rows(topology, director)[address][0]

    # The check runs every delay_loop seconds: one interval, its retry and slack for TCG.
    bound = 4 * topology.delay_loop + 10
    vmlab.ssh(victim, "systemctl stop nginx.service")
    try:
        left = vmlab.wait_for(lambda: weight() == 0, bound)
        served = Counter(get(topology.vip)[1]["x-edge-node"] for _ in range(10))
        assert victim not in served, served
    finally:
        vmlab.ssh(victim, "systemctl start nginx.service")
    back = vmlab.wait_for(lambda: weight() > 0, bound)
    vmlab.record_figures(
        f"real-server-check-{topology.name}",
        {"left_within_s": round(left, 2), "back_within_s": round(back, 2), "bound_s": bound},
    )


def test_drain_and_undrain_lose_no_request(topology):
    node = topology.real_servers[0]
    address = topology.address(node)
    load = vmlab.Load(topology.vip, f"drain-{topology.name}")
    try:
        time.sleep(2)
        drain_s = vmlab.playbook("drain", node)
        drained_at = time.time()
        rows = {d: vmlab.ipvs_rows(topology, d)[address] for d in topology.directors}
        time.sleep(3)
        undrain_s = vmlab.playbook("undrain", node)
        undrained_at = time.time()
        time.sleep(3)
    finally:
        records = load.stop()
    while_drained = [r for r in records if drained_at <= r["t"] <= undrained_at - 5 and r["ok"]]
    after = [r for r in records if r["t"] > undrained_at and r["ok"]]
    figures = vmlab.summary(records) | {
        "drain_s": round(drain_s, 1),
        "undrain_s": round(undrain_s, 1),
    }
    vmlab.record_figures(f"drain-{topology.name}", figures)
    assert all(weight == 0 and active == 0 for weight, active, _ in rows.values()), rows
    assert node not in {r["node"] for r in while_drained}
    assert node in {r["node"] for r in after}
    assert figures["failed"] == 0, figures


class ConnectionEvidence:
    """What each director's IPVS knows of the load's keep-alive connections, phase by phase:
    the state and time left of their entries (`ipvsadm -Lnc`), the sync daemons, and who
    holds the VIP. Written with the load's records, so that a broken connection can be
    traced to the director that lost (or never learnt) its entry."""

    def __init__(self, topology: vmlab.Topology, name: str) -> None:
        self.topology = topology
        self.name = name
        self.ports: set[int] = set()
        self.phases: list[dict] = []

    def snapshot(self, phase: str) -> dict:
        directors = {}
        for director in self.topology.directors:
            entries = [
                entry
                for entry in vmlab.ipvs_connections(director)
                if int(entry["source"].rsplit(":", 1)[1]) in self.ports
                and entry["virtual"].startswith(f"{self.topology.vip}:")
            ]
            directors[director] = {
                "entries": sorted(entries, key=lambda e: e["source"]),
                "daemons": vmlab.sync_daemons(director),
            }
        phase_record = {
            "phase": phase,
            "t": round(time.time(), 3),
            "holder": vmlab.current_holder(self.topology),
            "directors": directors,
        }
        self.phases.append(phase_record)
        return phase_record

    def known_by(self, director: str) -> set[int]:
        """The long-lived ports that director has an ESTABLISHED entry for, now."""
        return {
            int(entry["source"].rsplit(":", 1)[1])
            for entry in self.snapshot(f"waiting for {director}")["directors"][director]["entries"]
            if entry["state"] == "ESTABLISHED"
        }

    def write(self, records: list[dict]) -> None:
        failures = [r for r in records if not r["ok"]]
        vmlab.record_figures(
            f"{self.name}-evidence",
            {"ports": sorted(self.ports), "phases": self.phases, "failures": failures},
        )


def test_established_connections_survive_a_director_failover():
    """lvs_a (lvs_sync_daemon): keep-alive connections through the VIP while the master
    director's keepalived stops (the backup takes the VIP) and starts again (failback)."""
    topology = TOPOLOGIES["lvs_a"]
    master = vmlab.holder(topology)
    backup = next(d for d in topology.directors if d != master)
    load = vmlab.Load(topology.vip, "sync-daemon-failover", period=0.1, long_lived=4)
    evidence = ConnectionEvidence(topology, "sync-daemon-failover")
    try:
        # The keep-alive connections: the load's connections that stay open.
        vmlab.wait_for(lambda: len(vmlab.client_ports(topology.vip, load.process.pid)) >= 4, 30)
        evidence.ports = vmlab.client_ports(topology.vip, load.process.pid)
        time.sleep(1)
        evidence.ports &= vmlab.client_ports(topology.vip, load.process.pid)
        assert len(evidence.ports) == 4, evidence.ports
        # The kernel's sync daemon sends its buffer every 2 s (IPVS_SYNC_FLUSH_TIME, not
        # tunable): a connection younger than that is not yet known to the peer director, and
        # a failover resets it (docs/failover.md, "Connection sync"). What this test checks is
        # that a synced connection survives, so it fails over once the backup knows them all.
        vmlab.wait_for(lambda: evidence.known_by(backup) >= evidence.ports, 30, period=0.5)
        evidence.snapshot("before-stop")
        vmlab.ssh(master, "systemctl stop keepalived.service")
        vmlab.wait_for(lambda: vmlab.current_holder(topology) == backup, 30, period=0.5)
        evidence.snapshot("after-takeover")
        time.sleep(3)
        # Likewise for the failback: the returning director must know them (it kept learning).
        vmlab.wait_for(lambda: evidence.known_by(master) >= evidence.ports, 30, period=0.5)
        evidence.snapshot("before-start")
        vmlab.ssh(master, "systemctl start keepalived.service")
        vmlab.wait_for(lambda: vmlab.current_holder(topology) == master, SETTLE_SECONDS, period=0.5)
        evidence.snapshot("after-failback")
        time.sleep(3)
        evidence.snapshot("end")
    finally:
        vmlab.ssh(master, "systemctl start keepalived.service")
        records = load.stop()
        evidence.write(records)
    long_lived = [r for r in records if r["kind"] == "long"]
    figures = {
        "long_lived": vmlab.summary(long_lived),
        "new": vmlab.summary([r for r in records if r["kind"] == "new"]),
    }
    vmlab.record_figures("sync-daemon-failover", figures)
    # The connections opened before the failover answered throughout: none broke.
    assert figures["long_lived"]["broken"] == 0, figures
    assert len({r["conn"] for r in long_lived if r["reused"]}) == 4
