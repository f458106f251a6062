"""The BGP mode's health gate (roles/frr's edge-vip-announce) run alone, in a network
namespace of its own: its checks answered by a small HTTP server there, scripted, and its
states read from its JSON lines. Mixed failures count as one streak: a check that fails now
as a required one, now as a preferred one, still takes the node down from announced."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from role_template import render_role_template

VIP = "198.18.30.100"
PORT = 18080

# Answers /healthz and /readyz as the file `mode` says: "healthy" (both 200), "mixed"
# (/healthz fails every other time, /readyz always: the gate measures 0, 1, 0, 1, ...).
CHECKS = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from pathlib import Path

    mode_file = Path(sys.argv[1])
    count = {"healthz": 0}

    class Checks(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            mode = mode_file.read_text().strip()
            ok = True
            if mode == "mixed":
                if self.path == "/healthz":
                    count["healthz"] += 1
                    ok = count["healthz"] % 2 == 0
                else:
                    ok = False
            self.send_response(200 if ok else 500)
            self.send_header("Content-Length", "0")
            self.end_headers()

    HTTPServer(("127.0.0.1", int(sys.argv[2])), Checks).serve_forever()
    """
)


def render_gate(directory: Path) -> Path:
    (directory / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"edge": {"hosts": {"edge1": {}}}}}})
    )
    settings = {
        "frr_asn": 64600,
        "frr_router_id": "198.18.30.11",
        "frr_upstream_peers": [{"address": "198.18.30.1", "asn": 64500}],
        "frr_vips": [VIP],
        "frr_vip_required_checks": [f"http://127.0.0.1:{PORT}/healthz"],
        "frr_vip_preferred_checks": [f"http://127.0.0.1:{PORT}/readyz"],
        "frr_vip_probe_period": 0.1,
    }
    return render_role_template(
        "frr",
        "usr/local/libexec/frr/edge-vip-announce.j2",
        directory / "edge-vip-announce",
        settings,
        inventory=str(directory / "hosts.yml"),
        host="edge1",
        validate="sh -n %s",
    )


def states(log: Path) -> list[str]:
    lines = log.read_text().splitlines()
    return [json.loads(line)["state"] for line in lines if '"vip_announcement"' in line]


def wait_for_state(log: Path, state: str) -> list[str]:
    deadline = time.monotonic() + 60
    while (seen := states(log))[-1:] != [state]:
        if time.monotonic() > deadline:
            pytest.fail(f"the gate's states {seen}, not ending in {state}")
        time.sleep(0.1)
    return seen


def test_mixed_failures_take_an_announced_node_down(tmp_path):
    gate = render_gate(tmp_path)
    mode = tmp_path / "mode"
    mode.write_text("healthy\n")
    (tmp_path / "checks.py").write_text(CHECKS)
    runner = textwrap.dedent(
        f"""
        ip link set lo up
        {sys.executable} {tmp_path / "checks.py"} {mode} {PORT} & checks=$!
        sh {gate} & gate=$!
        trap 'kill $gate $checks; wait; exit 0' TERM
        wait
        """
    )
    log = tmp_path / "gate.log"
    process = subprocess.Popen(
        ["unshare", "--net", "--", "sh", "-c", runner],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_for_state(log, "announced") == ["withdrawn", "announced"]
        mode.write_text("mixed\n")
        # Every probe below announced, never the same value twice in a row: a streak still.
        assert wait_for_state(log, "prepended") == ["withdrawn", "announced", "prepended"]
    finally:
        process.terminate()
        process.wait(timeout=30)
