import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drill import holders, routes

ALIASES = {"198.51.100.11": "edge1", "198.51.100.12": "edge2", "edge1": "edge1", "edge2": "edge2"}


def log(*records):
    return "".join(json.dumps({"t": t, "via": via}) + "\n" for t, via in records)


def test_the_router_log_becomes_each_nodes_announced_steps():
    text = log(
        (99.0, ["198.51.100.11", "198.51.100.12"]),
        (102.3, ["198.51.100.12"]),
        (105.5, ["198.51.100.11", "198.51.100.12"]),
    )
    steps = routes.transitions(text, ALIASES)
    assert steps == {
        "edge1": [(99.0, True), (102.3, False), (105.5, True)],
        "edge2": [(99.0, True)],
    }
    merged = holders.merge(steps)
    assert holders.holders_at(merged, 103.0) == {"edge2"}
    assert holders.vacant(merged, 99.0, 110.0) == []


def test_every_node_starts_withdrawn_and_an_unknown_next_hop_keeps_its_address():
    steps = routes.transitions(log((99.0, []), (100.0, ["198.51.100.13"])), ALIASES)
    assert steps["edge1"] == [(99.0, False)]
    assert steps["198.51.100.13"] == [(99.0, False), (100.0, True)]


def test_an_empty_log_is_refused():
    with pytest.raises(ValueError, match="did not start"):
        routes.transitions("", ALIASES)


def test_gateways_of_one_route_and_of_ecmp():
    ecmp = [{"dst": "198.51.100.100", "nexthops": [{"gateway": "b"}, {"gateway": "a"}]}]
    assert routes.gateways(ecmp) == ["a", "b"]
    assert routes.gateways([{"gateway": "a"}]) == ["a"]
    assert routes.gateways([]) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace needs root")
def test_the_watch_logs_each_change_of_the_routers_next_hops(tmp_path):
    namespace = f"drill-routes-{os.getpid()}"
    vip = "198.51.100.100/32"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    out = tmp_path / "router.log"
    try:
        ip = ["ip", "-n", namespace]
        subprocess.run([*ip, "link", "add", "name", "r0", "type", "veth", "peer", "name", "r1"],
                       check=True)  # fmt: skip
        subprocess.run([*ip, "address", "add", "198.51.100.2/24", "dev", "r0"], check=True)
        for device in ("r0", "r1"):
            subprocess.run([*ip, "link", "set", device, "up"], check=True)
        watch = ["--vip", "198.51.100.100", "--out", str(out), "--max-seconds", "120"]
        watcher = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "drill.routes", *watch],
            cwd=Path(__file__).resolve().parents[2],
        )
        steps = [
            ["route", "add", vip, "proto", "bgp", "nexthop", "via", "198.51.100.11",
             "nexthop", "via", "198.51.100.12"],
            ["route", "replace", vip, "proto", "bgp", "via", "198.51.100.12"],
            ["route", "del", vip, "proto", "bgp"],
        ]  # fmt: skip
        expected = [[], ["198.51.100.11", "198.51.100.12"], ["198.51.100.12"], []]
        for count, step in enumerate([None, *steps], start=1):
            if step:
                subprocess.run([*ip, *step], check=True)
            deadline = time.monotonic() + 60
            while len(out.read_text().splitlines() if out.exists() else []) < count:
                assert time.monotonic() < deadline, f"no log line after {step}"
                time.sleep(0.05)
        watcher.terminate()
        assert watcher.wait(timeout=60) == 0
        logged = [json.loads(line)["via"] for line in out.read_text().splitlines()]
        assert logged == expected
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)
