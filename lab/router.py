"""The lab's upstream router (container `router`, `make lab VIP_MODE=bgp`; docs/bgp.md, "The
lab"): what a ToR switch does for the edges in BGP mode, on one Linux network namespace.

    router.py run --asn 64500 --router-id 198.51.100.2 --edge 198.51.100.11 \\
        --edge 198.51.100.12 --vip 198.51.100.100 [--resilient-buckets 128 | --no-resilient]

`run` is PID 1 of the container. It peers with every edge (eBGP, whatever the edges' ASN; BFD
3 x --bfd-interval ms, BGP timers 3/9 s as the frr role's defaults), accepts the VIPs /32 from
them and nothing else, announces nothing, and installs every equal path (ECMP,
`maximum-paths`); the container's `net.ipv4.fib_multipath_hash_policy` 1 hashes flows on
addresses and ports.

FRR 8.4 installs BGP's multipath routes as plain (hash-threshold) groups: when an edge leaves or
comes back, flows to the edges that stayed move too. With resilient hashing (the default) this
process mirrors each VIP's route, as zebra installs it in the main table, into table
MIRROR_TABLE through a resilient nexthop group (Linux 5.13), and a rule sends the VIPs' packets
there first: an edge that leaves gives its buckets to the others and nothing else moves, and
an edge that comes back gets only buckets idle for `idle_timer` seconds. The group always has
one more member, a next hop of weight 1 that gets no bucket (the tracker): the kernel chooses
a bucket, and marks it busy, only for a group of two members or more, so with one edge left
and no tracker every bucket looked idle however busy, and a returning edge took busy buckets
of the one that stayed (docs/bgp.md, "The lab"). The mirror follows zebra's route on every
route or nexthop event of the kernel (`ip monitor`), within milliseconds. `--no-resilient`
leaves zebra's plain ECMP alone: the drill measures both.

Standard library only: it runs on the cluster node image (lab/cluster_image.sh: FRR).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

FRR_DAEMONS = Path("/etc/frr/daemons")
FRR_CONFIG = Path("/etc/frr/frr.conf")
FRR_INIT = "/usr/lib/frr/frrinit.sh"
READY_FILE = Path("/run/router.ready")
# Where the resilient mirror lives: its table, the rule's priority (before the main table's
# 32766) and the nexthop ids, far above those zebra allocates for itself.
MIRROR_TABLE = 100
MIRROR_RULE_PRIORITY = 100
NEXTHOP_ID_BASE = 1_000_000
GROUP_ID = NEXTHOP_ID_BASE
TRACKER_ID = NEXTHOP_ID_BASE - 1
# Weights: an edge's against the tracker's. The kernel gives a member DIV_ROUND_CLOSEST(buckets
# * its share of the weights) buckets; with these the tracker's share rounds to 0 buckets as
# long as there are at most MAX_BUCKETS, even next to one edge (128 * 255/256 = 127.5 -> 128).
EDGE_WEIGHT = 255
TRACKER_WEIGHT = 1
MAX_BUCKETS = 128
# A returning edge takes over only buckets idle this long (seconds): long enough that a
# keep-alive connection's bucket is never idle, short enough that new flows reach it soon.
IDLE_SECONDS = 1
# Besides the kernel's events, a full check this often (seconds): a missed event costs no more.
RESYNC_SECONDS = 5


@dataclass(frozen=True)
class RouterPlan:
    asn: int
    router_id: str
    edges: tuple[str, ...]
    vips: tuple[str, ...]
    bfd_interval_ms: int
    resilient_buckets: int  # 0: plain ECMP, as zebra installs it


def frr_config(plan: RouterPlan) -> str:
    """bgpd, bfdd and zebra's configuration: the VIPs from every edge, all paths installed."""
    vips = "".join(
        f"ip prefix-list EDGE-VIPS seq {10 * i} permit {vip}/32\n"
        for i, vip in enumerate(plan.vips, start=1)
    )
    neighbours = "".join(f" neighbor {edge} peer-group EDGES\n" for edge in plan.edges)
    return f"""\
frr defaults traditional
hostname router
log file /var/log/frr/frr.log informational
service integrated-vtysh-config
! Routes as plain multipath routes, not kernel nexthop objects: the resilient mirror reads them.
no zebra nexthop kernel enable
!
{vips}!
route-map FROM-EDGES permit 10
 match ip address prefix-list EDGE-VIPS
exit
route-map FROM-EDGES deny 20
exit
route-map TO-EDGES deny 10
exit
!
bfd
 profile edges
  receive-interval {plan.bfd_interval_ms}
  transmit-interval {plan.bfd_interval_ms}
  detect-multiplier 3
 exit
exit
!
router bgp {plan.asn}
 bgp router-id {plan.router_id}
 no bgp default ipv4-unicast
 timers bgp 3 9
 neighbor EDGES peer-group
 neighbor EDGES remote-as external
 neighbor EDGES bfd profile edges
 neighbor EDGES advertisement-interval 0
{neighbours} !
 address-family ipv4 unicast
  neighbor EDGES activate
  neighbor EDGES route-map FROM-EDGES in
  neighbor EDGES route-map TO-EDGES out
  maximum-paths 16
 exit-address-family
exit
!
"""


def daemons_enabled(daemons: str) -> str:
    """/etc/frr/daemons with bgpd and bfdd on (zebra always runs)."""
    return re.sub(r"(?m)^(bgpd|bfdd)=no$", r"\1=yes", daemons)


def gateways(routes: list[dict]) -> frozenset[str]:
    """The next hops of `ip -json route show` output: one route, ECMP's several, or none."""
    found: set[str] = set()
    for route in routes:
        found |= {hop["gateway"] for hop in route.get("nexthops", []) if "gateway" in hop}
        if "gateway" in route:
            found.add(route["gateway"])
    return frozenset(found)


def nexthop_ids(edges: tuple[str, ...]) -> dict[str, int]:
    """One kernel nexthop object per edge, numbered in the order the edges were given."""
    return {edge: GROUP_ID + i for i, edge in enumerate(edges, start=1)}


def mirror_commands(
    plan: RouterPlan, vip: str, members: frozenset[str], group_exists: bool
) -> list[list[str]]:
    """`ip` arguments that make table MIRROR_TABLE's route to `vip` use exactly `members` (the
    edges zebra's route has, and the tracker) through the resilient group: replaced in place,
    so the kernel keeps every bucket of an edge that stays."""
    if not members:
        return [["route", "del", f"{vip}/32", "table", str(MIRROR_TABLE)]]
    ids = nexthop_ids(plan.edges)
    unknown = sorted(members - ids.keys())
    if unknown:
        raise ValueError(f"next hops {unknown} are not edges of this router ({plan.edges})")
    group = "/".join(
        [f"{ids[edge]},{EDGE_WEIGHT}" for edge in plan.edges if edge in members]
        + [f"{TRACKER_ID},{TRACKER_WEIGHT}"]
    )
    if group_exists:  # the bucket count and timers are fixed at creation: members only
        kind = ["type", "resilient"]
    else:
        kind = ["type", "resilient", "buckets", str(plan.resilient_buckets)]
        kind += ["idle_timer", str(IDLE_SECONDS), "unbalanced_timer", "0"]
    return [
        ["nexthop", "replace", "id", str(GROUP_ID), "group", group, *kind],
        ["route", "replace", f"{vip}/32", "nhid", str(GROUP_ID), "table", str(MIRROR_TABLE)],
    ]


# I/O


def ip(*argv: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *argv], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


def device_towards(address: str) -> str:
    return json.loads(ip("-json", "route", "get", address))[0]["dev"]


def start_frr(plan: RouterPlan) -> None:
    FRR_DAEMONS.write_text(daemons_enabled(FRR_DAEMONS.read_text()))
    FRR_CONFIG.write_text(frr_config(plan))
    subprocess.run([FRR_INIT, "restart"], check=True)


class Mirror:
    """The resilient copy of zebra's VIP routes (module docstring)."""

    def __init__(self, plan: RouterPlan) -> None:
        self.plan = plan
        self.members: dict[str, frozenset[str]] = {}
        self.group_exists = False

    def set_up(self) -> None:
        # The tracker never gets a bucket: any next hop does, one on the edges' link is simplest.
        tracker_device = device_towards(self.plan.edges[0])
        ip("nexthop", "replace", "id", str(TRACKER_ID), "dev", tracker_device)
        for edge, nexthop_id in nexthop_ids(self.plan.edges).items():
            ip(
                "nexthop",
                "replace",
                "id",
                str(nexthop_id),
                "via",
                edge,
                "dev",
                device_towards(edge),
            )
        for vip in self.plan.vips:
            ip("rule", "del", "to", f"{vip}/32", "lookup", str(MIRROR_TABLE), check=False)
            ip(
                "rule",
                "add",
                "to",
                f"{vip}/32",
                "lookup",
                str(MIRROR_TABLE),
                "priority",
                str(MIRROR_RULE_PRIORITY),
            )

    def sync(self) -> None:
        for vip in self.plan.vips:
            members = gateways(
                json.loads(ip("-json", "route", "show", f"{vip}/32", "proto", "bgp"))
            )
            if self.members.get(vip) == members:
                continue
            for argv in mirror_commands(self.plan, vip, members, self.group_exists):
                # A route already gone is what `route del` wants.
                ip(*argv, check=argv[:2] != ["route", "del"])
            self.group_exists = self.group_exists or bool(members)
            self.members[vip] = members
            print(
                json.dumps({"t": round(time.time(), 6), "vip": vip, "via": sorted(members)}),
                flush=True,
            )

    def follow(self) -> None:
        """Sync at every route or nexthop event of the kernel, and every RESYNC_SECONDS."""
        monitor = subprocess.Popen(
            ["ip", "-o", "monitor", "route", "nexthop"],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.sync()
        while monitor.poll() is None:
            ready, _, _ = select.select([monitor.stdout], [], [], RESYNC_SECONDS)
            if ready and not monitor.stdout.readline():
                break
            self.sync()
        raise SystemExit("ip monitor ended")


def run(plan: RouterPlan) -> int:
    # PID 1 gets no default signal handlers: `docker stop` must still end the router.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    start_frr(plan)
    mirror = Mirror(plan) if plan.resilient_buckets else None
    if mirror:
        mirror.set_up()
    READY_FILE.write_text(json.dumps({"edges": plan.edges, "resilient": bool(mirror)}))
    print(
        f"router: AS {plan.asn}, edges {', '.join(plan.edges)}, "
        f"{'resilient' if mirror else 'plain'} ECMP",
        flush=True,
    )
    if mirror:
        mirror.follow()
    else:
        signal.pause()
    return 1


def parse_plan(argv: list[str] | None = None) -> RouterPlan:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="route the VIPs to the edges (PID 1)")
    run_parser.add_argument("--asn", type=int, required=True)
    run_parser.add_argument("--router-id", type=ipaddress.IPv4Address, required=True)
    run_parser.add_argument("--edge", type=ipaddress.IPv4Address, action="append", required=True)
    run_parser.add_argument("--vip", type=ipaddress.IPv4Address, action="append", required=True)
    run_parser.add_argument("--bfd-interval", type=int, default=300, help="milliseconds")
    hashing = run_parser.add_mutually_exclusive_group()
    hashing.add_argument("--resilient-buckets", type=int, default=128)
    hashing.add_argument("--no-resilient", action="store_true", help="zebra's plain ECMP")
    args = parser.parse_args(argv)
    if not args.no_resilient and not 2 <= args.resilient_buckets <= MAX_BUCKETS:
        parser.error(f"--resilient-buckets must be 2-{MAX_BUCKETS}: more give the tracker one")
    return RouterPlan(
        asn=args.asn,
        router_id=str(args.router_id),
        edges=tuple(str(edge) for edge in args.edge),
        vips=tuple(str(vip) for vip in args.vip),
        bfd_interval_ms=args.bfd_interval,
        resilient_buckets=0 if args.no_resilient else args.resilient_buckets,
    )


def main(argv: list[str] | None = None) -> int:
    return run(parse_plan(argv))


if __name__ == "__main__":
    sys.exit(main())
