"""lab/seed_controller.py, the seed topology's stand-in in-cluster controller, in front of the
real lab/backend.py, on loopback: a routed Host reaches its backend, any other gets 404, and
the health endpoint answers 200 (what the directors' checks ask)."""

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parent.parent
START_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port: int, path: str = "/", host: str = "web1") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(port: int) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def controller():
    """(HTTP port, health port) of a controller that routes web1 to a running backend."""
    backend_port, http_port, health_port = free_port(), free_port(), free_port()
    processes = [
        subprocess.Popen(
            [
                *(sys.executable, str(LAB / "backend.py"), "--app", "web1", "--name", "pod1"),
                *("--address", "127.0.0.1", "--port", str(backend_port)),
            ]
        ),
        subprocess.Popen(
            [
                *(sys.executable, str(LAB / "seed_controller.py"), "--address", "127.0.0.1"),
                *("--route", f"web1=127.0.0.1:{backend_port}"),
                *("--http-port", str(http_port), "--health-port", str(health_port)),
            ]
        ),
    ]
    try:
        for port in (backend_port, http_port, health_port):
            wait_for(port)
        yield http_port, health_port
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def test_routes_by_host_and_answers_its_health_endpoint(controller):
    http_port, health_port = controller
    assert get(http_port, host="web1") == (200, "web1 v1 pod1\n")
    status, body = get(http_port, host="web3")
    assert (status, body) == (404, "404 no route for host web3\n")
    assert get(health_port, "/healthz") == (200, "ok\n")


def metric_samples(port: int) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    status, text = get(port, "/metrics")
    assert status == 200
    # The parser names a counter's samples NAME_total (OpenMetrics); the page has NAME, as
    # ingress-nginx's.
    assert "\nnginx_ingress_controller_requests{" in text
    return {
        (sample.name.removesuffix("_total"), tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counts_requests_as_ingress_nginx_names_them(controller):
    """The same names, labels and buckets as the edge's agent (edgeagent's request_counts.py),
    so a cutover compares the tiers alike."""
    http_port, health_port = controller
    for _ in range(3):
        assert get(http_port, host="web1")[0] == 200
    assert get(http_port, host="web3")[0] == 404
    samples = metric_samples(health_port)
    routed = (
        ("host", "web1"),
        ("ingress", "web1"),
        ("method", "GET"),
        ("namespace", "default"),
        ("service", "web1"),
        ("status", "200"),
    )
    assert samples[("nginx_ingress_controller_requests", routed)] == 3
    # A Host no route defines is not counted (ingress-nginx: --metrics-per-undefined-host=false).
    assert [labels for name, labels in samples if dict(labels).get("host") != "web1"] == []
    duration = "nginx_ingress_controller_request_duration_seconds"
    assert samples[(f"{duration}_count", routed)] == 3
    assert samples[(f"{duration}_bucket", tuple(sorted((*routed, ("le", "+Inf")))))] == 3
    assert samples[(f"{duration}_sum", routed)] > 0
    text = get(health_port, "/metrics")[1]
    assert 'le="1"}' in text and 'le="10"}' in text and 'le="1.0"' not in text  # ingress-nginx's
