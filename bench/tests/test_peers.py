"""bench/peers.py: the HAProxy and minimal nginx configurations pass their own checkers and
route by Host; h2load's per-request log is read, and refused when it is not one."""

import pathlib
import subprocess
import sys

import pytest

# bench/ is a directory of scripts whose modules import each other by name.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import cluster
import peers
from backend import Backend
from edgeagent.cli import self_signed
from suite import agentlab

APPS = cluster.apps(3)


@pytest.fixture
def pem(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    """The default certificate, key and both in one PEM; per-host ones in certificates/,
    as peers.start_haproxy and start_minimal_nginx write them."""
    haproxy, nginx = tmp_path / "haproxy" / "certificates", tmp_path / "nginx" / "certificates"
    haproxy.mkdir(parents=True)
    nginx.mkdir(parents=True)
    for app, pair in cluster.certificates(APPS).items():
        (haproxy / f"{app.host}.pem").write_bytes(pair.certificate_pem + pair.key_pem)
        (nginx / f"{app.host}.crt").write_bytes(pair.certificate_pem)
        (nginx / f"{app.host}.key").write_bytes(pair.key_pem)
    pair = self_signed("edge-default")
    certificate, key, pem = tmp_path / "c.crt", tmp_path / "c.key", tmp_path / "c.pem"
    certificate.write_bytes(pair.certificate_pem)
    key.write_bytes(pair.key_pem)
    pem.write_bytes(pair.certificate_pem + pair.key_pem)
    return certificate, key, pem


def test_haproxy_config_passes_haproxy_check(tmp_path, pem):
    tmp_path /= "haproxy"
    config, host_map = peers.haproxy_config(APPS, 8080, tmp_path, (18080, 18443), pem[2])
    (tmp_path / "hosts.map").write_text(host_map)
    (tmp_path / "haproxy.cfg").write_text(config)
    peers.check_haproxy(tmp_path / "haproxy.cfg")
    assert host_map.splitlines()[0] == f"{APPS[0].host} team-00_app-00000"
    assert config.count("\nbackend team-") == len(APPS)
    assert config.count("    server pod") == len(APPS) * cluster.ENDPOINTS_PER_SERVICE


def test_haproxy_check_refusal_is_a_clear_error(tmp_path, pem):
    tmp_path /= "haproxy"
    config, _ = peers.haproxy_config(APPS, 8080, tmp_path, (18080, 18443), pem[2])
    (tmp_path / "haproxy.cfg").write_text(config.replace("balance roundrobin", "balance nope"))
    (tmp_path / "hosts.map").write_text("")
    with pytest.raises(ValueError, match=r"(?s)haproxy -c refused .*balance only supports"):
        peers.check_haproxy(tmp_path / "haproxy.cfg")


def test_minimal_nginx_config_passes_nginx_t(tmp_path, pem):
    tmp_path /= "nginx"
    (tmp_path / "temp").mkdir()
    config = tmp_path / "nginx.conf"
    config.write_text(
        peers.minimal_nginx_config(APPS, 8080, tmp_path, (18080, 18443), pem[0], pem[1])
    )
    subprocess.run([agentlab.NGINX, "-t", "-q", "-c", str(config)], check=True, timeout=60)


def test_h2load_fixed_rate_through_haproxy(tmp_path, pem):
    """A real h2load run at the fixed rate through a real HAProxy to the bench backend:
    every host routes, and the log parses into one latency per request."""
    backend = Backend(tmp_path / "backend").start()
    daemon = peers.Daemon(tmp_path / "haproxy", "haproxy.pid", peers.signal.SIGUSR1)
    config, host_map = peers.haproxy_config(
        APPS, backend.port, daemon.root, (daemon.http_port, daemon.https_port), pem[2]
    )
    (daemon.root / "hosts.map").write_text(host_map)
    (daemon.root / "haproxy.cfg").write_text(config)
    try:
        subprocess.run(
            [peers.HAPROXY, "-D", "-f", str(daemon.root / "haproxy.cfg")], check=True, timeout=60
        )
        measured = peers.fixed_rate(f"https://127.0.0.1:{daemon.https_port}/", APPS[1].host)
    finally:
        daemon.stop()
        backend.stop()
    assert measured["requests"] > 0
    assert 0 < measured["p50_ms"] <= measured["p99_ms"]


def test_h2load_log_parsing():
    log = "1700000000000000\t200\t1500\n1700000000001000\t200\t2500\n"
    assert peers.h2load_latencies_ms(log) == [1.5, 2.5]


@pytest.mark.parametrize(
    ("log", "message"),
    [
        ("", "no request"),
        ("1700000000000000\t404\t1500\n", "status 404"),
        ("garbage\n", "line 1 is not"),
    ],
)
def test_h2load_log_refused(log, message):
    with pytest.raises(ValueError, match=message):
        peers.h2load_latencies_ms(log)


def test_figures_take_the_worse_protocol():
    side = {"http_fixed_rate_p99_ms": 2.0, "https_fixed_rate_p99_ms": 3.5}
    result = {
        "edge": side,
        "haproxy": {"http_fixed_rate_p99_ms": 1.5, "https_fixed_rate_p99_ms": 1.0},
        "ratios": {
            "http_rps_vs_haproxy": 0.8,
            "https_rps_vs_haproxy": 0.7,
            "tls_handshakes_per_second_vs_haproxy": 1.1,
            "http_rps_vs_minimal_nginx": 0.95,
            "https_rps_vs_minimal_nginx": 0.99,
        },
    }
    assert peers.figures(result) == {
        "edge_vs_haproxy_rps_ratio": 0.7,
        "edge_vs_minimal_nginx_rps_ratio": 0.95,
        "edge_vs_haproxy_tls_handshake_ratio": 1.1,
        "edge_p99_latency_ms_at_fixed_rate": 3.5,
        "haproxy_p99_latency_ms_at_fixed_rate": 1.5,
    }
