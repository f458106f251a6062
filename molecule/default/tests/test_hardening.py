"""Hardening of the converged edge (issue #14), checked on the nodes and from the host.

nginx's master runs without root: a generation the agent's user writes, with an `error_log`
in root's home, is refused at the reload and creates nothing there.

VRRP: the nodes accept adverts only from their peers (nftables table inet edge_vrrp). The
host, on molecule's bridge but no peer, sends well-formed VRRPv3 adverts of priority 255
for the VIP group's VRID; each node's filter counts and drops them, and the VIP stays on
the edge (a node that listened would give it up to the stranger).
"""

import ipaddress
import json
import os
import pathlib
import socket
import struct
import time

import testinfra
import testinfra.utils.ansible_runner
import yaml

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
EDGE_NODES = RUNNER.get_hosts("edge")
testinfra_hosts = EDGE_NODES

PROJECT = pathlib.Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
AGENT_DEFAULTS = yaml.safe_load((PROJECT / "roles/edgeagent/defaults/main.yml").read_text())
NGINX_DEFAULTS = yaml.safe_load((PROJECT / "roles/nginx/defaults/main.yml").read_text())
AGENT_DIR = NGINX_DEFAULTS["nginx_agent_dir"]
AS_AGENT = f"runuser -u {AGENT_DEFAULTS['edgeagent_user']} --"
# Where the agent's user tries to make nginx write; root's home, which only root may write.
ROOTS_FILE = "/root/written-by-nginx-for-edgeagent"

VRRP_PROTOCOL = 112
# Adverts sent by the stranger, one every STRANGER_INTERVAL seconds: long enough in total
# (several of the lab's 0.1 s advert intervals) that a node which listened would take over.
STRANGER_ADVERTS = 20
STRANGER_INTERVAL = 0.05
# A bound on waiting for the VIP to settle after the adverts, not a performance assertion.
SETTLE_SECONDS = 5


def edge_vars(name: str) -> dict:
    return RUNNER.get_variables(name)


def node(name: str) -> testinfra.host.Host:
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def node_address(name: str) -> str:
    return edge_vars(name)["keepalived_node_address"].split("/")[0]


VIP_GROUP = edge_vars(EDGE_NODES[0])["keepalived_instances"][0]
VIP = VIP_GROUP["virtual_ipaddresses"][0]
VIP_QUERY = f"ip -4 -o address show dev {VIP_GROUP['interface']} to {VIP}/32"


def vip_holders() -> list[str]:
    return [name for name in EDGE_NODES if node(name).check_output(VIP_QUERY).strip()]


def dropped_vrrp(name: str) -> int:
    """Packets counted by the VRRP filter's `dropped` counter on a node."""
    listing = json.loads(node(name).check_output("nft -j list counter inet edge_vrrp dropped"))
    (counter,) = (item["counter"] for item in listing["nftables"] if "counter" in item)
    return counter["packets"]


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def vrrp_v3_advert(source: str, destination: str, vrid: int, address: str) -> bytes:
    """A VRRPv3 advertisement (RFC 5798, 5.1) of priority 255 (the address owner: it wins
    every election) for one IPv4 address, with its checksum over the IPv4 pseudo-header."""
    centiseconds = 10
    body = struct.pack("!BBBBHH", 0x31, vrid, 255, 1, centiseconds, 0)
    body += ipaddress.IPv4Address(address).packed
    pseudo = (
        ipaddress.IPv4Address(source).packed
        + ipaddress.IPv4Address(destination).packed
        + struct.pack("!BBH", 0, VRRP_PROTOCOL, len(body))
    )
    return body[:6] + struct.pack("!H", checksum(pseudo + body)) + body[8:]


def source_towards(destination: str) -> str:
    """The host's own address on the way to `destination` (molecule's bridge)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((destination, 9))
        return probe.getsockname()[0]


def test_vrrp_filter_holds_exactly_the_peers(host):
    name = host.backend.host
    listing = json.loads(host.check_output("nft -j list set inet edge_vrrp peers"))
    (peer_set,) = (item["set"] for item in listing["nftables"] if "set" in item)
    expected = {node_address(other) for other in EDGE_NODES if other != name}
    assert set(peer_set.get("elem", [])) == expected


def test_vrrp_from_a_stranger_is_dropped_and_the_vip_stays():
    before_holders = vip_holders()
    assert len(before_holders) == 1, f"VIP {VIP} held by {before_holders}"
    before_counts = {name: dropped_vrrp(name) for name in EDGE_NODES}

    with socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP_PROTOCOL) as stranger:
        stranger.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)  # as RFC 5798 requires
        for _ in range(STRANGER_ADVERTS):
            for name in EDGE_NODES:
                target = node_address(name)
                advert = vrrp_v3_advert(
                    source_towards(target), target, VIP_GROUP["virtual_router_id"], VIP
                )
                stranger.sendto(advert, (target, 0))
            time.sleep(STRANGER_INTERVAL)

    for name in EDGE_NODES:
        assert dropped_vrrp(name) >= before_counts[name] + STRANGER_ADVERTS, name
    # Had the nodes listened, every one would have gone BACKUP (priority 255 beats all of
    # theirs) and the VIP would have left the edge within three advert intervals. Which node
    # holds it is not this test's question: on a busy host a slow health check moves it between
    # the nodes (and back after preempt_delay), with or without a stranger.
    time.sleep(SETTLE_SECONDS)
    after_holders = vip_holders()
    assert len(after_holders) == 1, f"VIP {VIP} held by {after_holders} after the adverts"


def test_nginx_master_is_not_root(host):
    main_pid = host.check_output("systemctl show nginx.service -p MainPID --value")
    assert int(main_pid) > 0
    user = host.check_output(f"stat -c %U /proc/{main_pid}").strip()
    assert user == NGINX_DEFAULTS["nginx_user"]


def eventually_logged(host, since: int, text: str) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if text in host.check_output(f"journalctl -t nginx --since @{since} -o cat"):
            return True
        time.sleep(0.5)
    return False


def test_the_agents_user_cannot_make_nginx_write_as_root(host):
    """As the agent's user (its files, its polkit reload), stage a generation whose edge.conf
    names a log file in root's home, point `current` at it and reload nginx."""
    live = host.check_output(f"readlink {AGENT_DIR}/current")
    hostile = f"{AGENT_DIR}/gen-hostile"
    since = int(host.check_output("date +%s"))
    stage = (
        f"mkdir {hostile} && cp -r {AGENT_DIR}/current/. {hostile}/"
        f" && echo 'error_log {ROOTS_FILE};' >> {hostile}/edge.conf"
        f" && ln -sfn gen-hostile {AGENT_DIR}/.current-hostile"
        f" && mv -T {AGENT_DIR}/.current-hostile {AGENT_DIR}/current"
    )
    try:
        host.run_expect([0], f'{AS_AGENT} sh -c "{stage}"')
        host.run(f"{AS_AGENT} systemctl reload nginx.service")  # allowed; nginx refuses the file
        assert eventually_logged(
            host, since, f'open() "{ROOTS_FILE}" failed (13: Permission denied)'
        )
        assert not host.file(ROOTS_FILE).exists
        healthz = "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/healthz"
        assert host.check_output(healthz) == "200"  # still on the previous configuration
    finally:
        host.run(
            f'{AS_AGENT} sh -c "ln -sfn {live} {AGENT_DIR}/.current-restore'
            f' && mv -T {AGENT_DIR}/.current-restore {AGENT_DIR}/current"'
        )
        host.run(f"rm -rf {hostile} {ROOTS_FILE}")


def test_agent_unit_bounds(host):
    shown = host.check_output(
        "systemctl show edgeagent.service -p RestartPreventExitStatus -p MemoryMax -p TasksMax"
    )
    values = dict(line.split("=", 1) for line in shown.splitlines())
    assert values["RestartPreventExitStatus"] == "2"
    assert values["TasksMax"] == str(AGENT_DEFAULTS["edgeagent_tasks_max"])
    assert values["MemoryMax"] != "infinity"
