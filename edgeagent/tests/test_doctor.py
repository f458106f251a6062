"""`edgeagent doctor` and the agent's background backend probe (issue 15): real sockets,
the emulator, real nginx and the agent's own settings."""

import base64
import json
import socket
import subprocess
import time
from email.utils import formatdate

import pytest
from agentlab import VENV_BIN, VIP, Edge, eventually, rule
from edgeagent.kube import ConnectionSettings
from edgeagent.settings import AgentSettings, DaemonSettings
from kubeemu.testing import EmulatorThread

from edgeagent import daemon, doctor, model, probe, vips

CLOSED_ADDRESS = "127.0.0.6"  # no lab backend listens there


def jwt(**claims):
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture
def listener():
    with socket.create_server(("127.0.0.2", 0)) as server:
        yield f"127.0.0.2:{server.getsockname()[1]}"


def test_the_probe_tells_a_reachable_service_from_an_unreachable_one(listener):
    port = listener.rsplit(":", 1)[1]
    upstreams = [
        model.Upstream("a", "default", "up", 80, (listener,)),
        model.Upstream("b", "default", "half", 80, (listener, f"{CLOSED_ADDRESS}:{port}")),
        model.Upstream("c", "default", "down", 80, (f"{CLOSED_ADDRESS}:{port}",)),
        model.Upstream("d", "default", "empty", 80, ()),
    ]
    reaches = {r.service: r for r in probe.probe(upstreams, timeout=5)}
    assert [s for s, r in sorted(reaches.items()) if r.unreachable] == ["down"]
    assert reaches["half"].detail.startswith("1 of 2 sampled endpoints accept")
    assert "refused" in reaches["down"].detail.lower()
    assert reaches["empty"].detail == "no ready endpoint to try"


def test_a_sample_is_spread_over_the_endpoints():
    endpoints = tuple(f"10.0.0.{n}:80" for n in range(10))
    assert probe.sample(endpoints, 3) == ("10.0.0.0:80", "10.0.0.3:80", "10.0.0.6:80")
    assert probe.sample(endpoints[:2], 3) == endpoints[:2]


def test_token_expiry_comes_from_the_jwt_exp_claim():
    assert doctor.jwt_expiry(jwt(exp=1900000000, sub="x")) == 1900000000
    assert doctor.jwt_expiry(jwt(sub="no expiry")) is None
    assert doctor.jwt_expiry("an-opaque-token") is None
    assert doctor.jwt_expiry("a.!!!.b") is None


def test_clock_skew_beyond_a_few_seconds_fails():
    now = float(int(time.time()))  # the Date header's resolution
    assert doctor.clock_check(formatdate(now, usegmt=True), now).ok
    late = doctor.clock_check(formatdate(now - 60, usegmt=True), now)
    assert not late.ok and "60.0 s ahead of the API" in late.detail
    assert not doctor.clock_check(None, now).ok


def test_the_vip_check_names_the_vips_this_node_holds():
    held = sorted(str(address) for address in vips.held_addresses())[0]
    assert f"holds {held} (the VIP holder)" in doctor.vip_check((held,)).detail
    assert "holds none of" in doctor.vip_check((VIP,)).detail
    # On loopback, as every node has its VIPs with keepalived_vip_on_lo: not held.
    assert "holds none of" in doctor.vip_check(("127.0.0.1",)).detail


def run_doctor(edge, *extra, token_file=None):
    options = edge.agent_command(edge.nginx, edge.health_port)[2:]
    if token_file is not None:
        at = options.index("--kubeconfig")
        del options[at : at + 2]
        options += ["--server", edge.api.url, "--token-file", str(token_file)]
    done = subprocess.run(
        [str(VENV_BIN / "edgeagent"), "doctor", *options, *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def test_doctor_reports_every_check_and_fails_on_an_unreachable_service(tmp_path):
    token_file = tmp_path / "token"
    expiry = int(time.time()) + 7200
    token_file.write_text(jwt(exp=expiry, sub="system:serviceaccount:edge:edgeagent"))
    with Edge(tmp_path) as edge:
        edge.apply_service("app", addresses=["127.0.0.2"])
        edge.apply_service("dead", addresses=[CLOSED_ADDRESS])
        edge.apply_ingress(
            "app", [rule("app.example.com", "app"), rule("dead.example.com", "dead")]
        )
        edge.agent.wait_ready()
        eventually(lambda: edge.backend_of("app.example.com") == "web1")
        edge.settled()

        status, output, errors = run_doctor(edge, "--json", token_file=token_file)
        assert status == 1, errors
        checks = {c["name"]: c for c in json.loads(output)["checks"]}
        assert {name: c["ok"] for name, c in checks.items()} == {
            "token": True,
            "api": True,
            "clock": True,
            "vip": True,
            "nginx": True,
            "pod routes": True,
            "backend default/app": True,
            "backend default/dead": False,
        }
        assert "in 1 h 59 min" in checks["token"]["detail"] or "in 2 h" in checks["token"]["detail"]
        assert f"holds none of {VIP}" in checks["vip"]["detail"]
        assert "0 of 1 sampled endpoints" in checks["backend default/dead"]["detail"]

        edge.apply_service("dead", addresses=["127.0.0.3"])
        eventually(lambda: edge.backend_of("dead.example.com") == "web2")
        edge.settled()
        status, output, errors = run_doctor(edge, token_file=token_file)
        assert status == 0, output + errors
        assert "ok   backend default/dead: 1 of 1 sampled endpoints accept" in output


def test_doctor_names_a_refused_token_and_a_silent_nginx(tmp_path):
    with EmulatorThread(token="the-right-one") as api:
        wrong = tmp_path / "token"
        wrong.write_text("a-revoked-one")
        done = subprocess.run(
            [
                str(VENV_BIN / "edgeagent"),
                "doctor",
                "--server",
                api.url,
                "--token-file",
                str(wrong),
                "--nginx-dir",
                str(tmp_path / "nginx"),
                "--status-listen",
                f"127.0.0.1:{_closed_port()}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert "FAIL api: " in done.stdout and "the token is refused (401)" in done.stdout
    assert "FAIL nginx: no answer from the status server" in done.stdout
    assert "backend" not in done.stdout  # nothing to list without the API


def _closed_port():
    with socket.create_server(("127.0.0.1", 0)) as server:
        return server.getsockname()[1]


def test_the_agent_probes_in_the_background_and_says_which_service(tmp_path):
    with Edge(tmp_path, **{"backend-probe-interval": 0.5}) as edge:
        edge.apply_service("dead", addresses=[CLOSED_ADDRESS])
        edge.apply_ingress("dead", [rule("dead.example.com", "dead")])
        edge.agent.wait_ready()

        def unreachable():
            return edge.agent.metric(
                "edgeagent_backend_unreachable", namespace="default", service="dead"
            )

        eventually(lambda: unreachable() == 1, timeout=30)
        eventually(
            lambda: [
                e
                for e in edge.core.list_namespaced_event("default").items
                if e.reason == "BackendUnreachable" and e.involved_object.name == "dead"
            ],
            timeout=30,
        )
        edge.apply_service("dead", addresses=["127.0.0.2"])
        eventually(lambda: unreachable() == 0, timeout=30)
        status, health = edge.agent.healthz()
        assert status == 200, health


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_probe_thread_makes_the_agent_unhealthy(tmp_path):
    """The probe is supervised like the informers: a bug that ends its thread shows in
    /healthz's dead threads instead of leaving the metric silently stale."""
    with EmulatorThread() as api:
        settings = AgentSettings(
            api=ConnectionSettings(kubeconfig=api.write_kubeconfig(tmp_path / "kubeconfig")),
            daemon=DaemonSettings(health_listen="127.0.0.1:0", backend_probe_interval=0.1),
        )
        agent = daemon.Agent(settings)

        def broken():
            raise RuntimeError("a bug")

        agent.probe.upstreams = broken
        agent.probe.start()
        eventually(lambda: "backend-probe" in agent.health.dead_threads())
        agent.stop.set()
