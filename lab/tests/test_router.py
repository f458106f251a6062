"""lab/router.py: the lab router's FRR configuration (checked by FRR's own parser) and its
resilient mirror of zebra's ECMP route, run against a real kernel in a network namespace."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("router", LAB / "router.py")
router = importlib.util.module_from_spec(_spec)
sys.modules["router"] = router  # dataclasses look their module up there
_spec.loader.exec_module(router)

EDGE1, EDGE2, VIP = "198.51.100.11", "198.51.100.12", "198.51.100.100"
ARGS = ["run", "--asn", "64500", "--router-id", "198.51.100.2"]
ARGS += ["--edge", EDGE1, "--edge", EDGE2, "--vip", VIP]
PLAN = router.parse_plan(ARGS)


def test_the_plan_has_resilient_hashing_unless_told_otherwise():
    assert router.parse_plan(ARGS).edges == (EDGE1, EDGE2)
    assert (PLAN.asn, PLAN.vips, PLAN.resilient_buckets) == (64500, (VIP,), 128)
    assert router.parse_plan([*ARGS, "--no-resilient"]).resilient_buckets == 0
    with pytest.raises(SystemExit):
        router.parse_plan([*ARGS, "--resilient-buckets", "1"])
    # More buckets than 128 would give the tracker one next to a lone edge (router.py).
    assert router.parse_plan([*ARGS, "--resilient-buckets", "128"]).resilient_buckets == 128
    with pytest.raises(SystemExit):
        router.parse_plan([*ARGS, "--resilient-buckets", "129"])


def test_the_frr_configuration_takes_the_vips_from_every_edge_and_passes_frrs_parser(tmp_path):
    config = router.frr_config(PLAN)
    for line in (
        f"ip prefix-list EDGE-VIPS seq 10 permit {VIP}/32",
        f" neighbor {EDGE1} peer-group EDGES",
        f" neighbor {EDGE2} peer-group EDGES",
        " neighbor EDGES remote-as external",
        " neighbor EDGES bfd profile edges",
        "  receive-interval 300",
        "  neighbor EDGES route-map FROM-EDGES in",
        "  maximum-paths 16",
        "no zebra nexthop kernel enable",
    ):
        assert line in config.splitlines()
    path = tmp_path / "frr.conf"
    path.write_text(config)
    subprocess.run(["vtysh", "--dryrun", "--inputfile", str(path)], check=True)


def test_the_daemons_file_turns_bgpd_and_bfdd_on():
    daemons = "zebra=yes\nbgpd=no\nospfd=no\nbfdd=no\n"
    assert router.daemons_enabled(daemons) == "zebra=yes\nbgpd=yes\nospfd=no\nbfdd=yes\n"


def test_gateways_of_one_route_and_of_ecmp():
    ecmp = [{"dst": VIP, "nexthops": [{"gateway": EDGE1}, {"gateway": EDGE2}]}]
    assert router.gateways(ecmp) == {EDGE1, EDGE2}
    assert router.gateways([{"dst": VIP, "gateway": EDGE2}]) == {EDGE2}
    assert router.gateways([]) == frozenset()


def test_the_mirror_creates_the_group_once_then_changes_only_its_members():
    first = router.mirror_commands(PLAN, VIP, frozenset({EDGE1, EDGE2}), group_exists=False)
    assert first[0] == [
        *("nexthop", "replace", "id", "1000000", "group", "1000001,255/1000002,255/999999,1"),
        *("type", "resilient", "buckets", "128", "idle_timer", "1", "unbalanced_timer", "0"),
    ]
    assert first[1] == ["route", "replace", f"{VIP}/32", "nhid", "1000000", "table", "100"]
    # One edge left: still a group of two with the tracker, so the kernel marks busy buckets.
    later = router.mirror_commands(PLAN, VIP, frozenset({EDGE2}), group_exists=True)
    assert later[0] == [
        *("nexthop", "replace", "id", "1000000", "group", "1000002,255/999999,1"),
        *("type", "resilient"),
    ]
    assert router.mirror_commands(PLAN, VIP, frozenset(), group_exists=True) == [
        ["route", "del", f"{VIP}/32", "table", "100"]
    ]
    with pytest.raises(ValueError, match=r"198\.51\.100\.13"):
        router.mirror_commands(PLAN, VIP, frozenset({"198.51.100.13"}), group_exists=True)


MIRROR_SCRIPT = textwrap.dedent(f"""\
    import importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("router", {str(LAB / "router.py")!r})
    router = importlib.util.module_from_spec(spec)
    sys.modules["router"] = router
    spec.loader.exec_module(router)
    mirror = router.Mirror(router.parse_plan({ARGS!r}))
    mirror.set_up()
    for members in sys.stdin:  # one line per step: the route zebra would have installed
        routes = json.loads(members)
        router.ip("route", "del", "{VIP}/32", "proto", "bgp", check=False)
        if routes:
            hops = [p for edge in routes for p in ("nexthop", "via", edge)]
            router.ip("route", "add", "{VIP}/32", "proto", "bgp", *hops)
        mirror.sync()
        buckets = router.ip("-json", "nexthop", "bucket", "list", "id", str(router.GROUP_ID))
        print(json.dumps(sorted(b["bucket"]["nhid"] for b in json.loads(buckets or "[]"))))
    """)


def wire_router(run: list[str]) -> None:
    """The router's side of the edges' link in the namespace `run` addresses (`ip -n NS`):
    a veth pair, both ends up, the router's address on r0."""
    subprocess.run([*run, "link", "add", "name", "r0", "type", "veth", "peer", "name", "r1"],
                   check=True)  # fmt: skip
    subprocess.run([*run, "address", "add", "198.51.100.2/24", "dev", "r0"], check=True)
    subprocess.run([*run, "link", "set", "r0", "up"], check=True)
    subprocess.run([*run, "link", "set", "r1", "up"], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace needs root")
def test_the_mirror_keeps_the_buckets_of_an_edge_that_stays(tmp_path):
    namespace = f"bgplab-router-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        run = ["ip", "-n", namespace]
        wire_router(run)
        steps = [[EDGE1, EDGE2], [EDGE2], [], [EDGE1, EDGE2]]
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", MIRROR_SCRIPT],
            input="".join(json.dumps(step) + "\n" for step in steps),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        both, survivor, none, back = (json.loads(line) for line in lines if line.startswith("["))
        first, second = router.nexthop_ids(PLAN.edges).values()
        assert len(both) == 128 and set(both) == {first, second}  # the tracker has none
        assert survivor == [second] * 128
        assert none == survivor  # the route is gone; the group stays for the edges' return
        # Back to two: every bucket is still the survivor's or idle long enough to move.
        assert len(back) == 128 and set(back) <= {first, second}
        routes = subprocess.run([*run, "-json", "route", "show", "table", "100"],
                                capture_output=True, text=True, check=True)  # fmt: skip
        assert [r["dst"] for r in json.loads(routes.stdout)] == [VIP]
        rule = subprocess.run([*run, "rule", "show", "priority", "100"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        assert f"to {VIP} lookup 100" in rule.stdout
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


# Flows through the router's own lookups (`ip route get` picks a bucket and marks it busy, as
# a forwarded packet does): held flows while one edge is left, then that edge's partner back.
HELD_FLOWS_SCRIPT = textwrap.dedent(f"""\
    import importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("router", {str(LAB / "router.py")!r})
    router = importlib.util.module_from_spec(spec)
    sys.modules["router"] = router
    spec.loader.exec_module(router)
    # A bucket used once in the last hour stays: what moves at the return is what was never used.
    router.IDLE_SECONDS = 3600
    mirror = router.Mirror(router.parse_plan({ARGS!r}))
    mirror.set_up()

    def zebra_installs(*edges):
        router.ip("route", "del", "{VIP}/32", "proto", "bgp", check=False)
        hops = [p for edge in edges for p in ("nexthop", "via", edge)]
        router.ip("route", "add", "{VIP}/32", "proto", "bgp", *hops)
        mirror.sync()

    def via(port):
        argv = ["-json", "route", "get", "{VIP}", "ipproto", "tcp", "sport", str(port)]
        return json.loads(router.ip(*argv, "dport", "80"))[0]["gateway"]

    zebra_installs("{EDGE1}", "{EDGE2}")
    zebra_installs("{EDGE2}")
    held = {{port: via(port) for port in range(40000, 40032)}}  # the flows of the one left
    zebra_installs("{EDGE1}", "{EDGE2}")
    buckets = router.ip("-json", "nexthop", "bucket", "list", "id", str(router.GROUP_ID))
    print(json.dumps({{
        "held": held,
        "after": {{port: via(port) for port in held}},
        "buckets": sorted(b["bucket"]["nhid"] for b in json.loads(buckets)),
    }}))
    """)


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace needs root")
def test_an_edge_that_comes_back_takes_no_bucket_busy_while_the_other_was_alone():
    namespace = f"bgplab-held-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        run = ["ip", "-n", namespace]
        wire_router(run)
        subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-qw",
                        "net.ipv4.fib_multipath_hash_policy=1"], check=True)  # fmt: skip
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", HELD_FLOWS_SCRIPT],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        outcome = json.loads(result.stdout.splitlines()[-1])
        assert set(outcome["held"].values()) == {EDGE2}
        # Every held flow stays with the edge that served it alone; the returning edge gets
        # its half of the buckets at once, all from the ones no flow had used.
        assert outcome["after"] == outcome["held"]
        first, second = router.nexthop_ids(PLAN.edges).values()
        assert outcome["buckets"] == [first] * 64 + [second] * 64
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)
