"""playbooks/cutover.yml's gate, measurements, decisions and rollback, without a kernel: the
directors' weights (keepalived, IPVS) are left out (--skip-tags cutover-weights; the weights
themselves: test_cutover_render.py, their check in IPVS: test_cutover_ipvs_weights.py),
everything else is real. The edge tier is a real nginx in
the dynamic mode with the agent's request collector on a metrics port; the in-cluster tier is
the lab's stand-in controller (lab/seed_controller.py) in front of a real backend; a load
thread sends requests to both tiers for the whole run, and each node's page is read by the
playbook as on a site. An edge whose backend refuses connections (502s) is worse than the
cluster: the first step rolls back and the report says why."""

import json
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "edgeagent" / "tests"))
from edgeagent.cache import key_of  # noqa: E402
from edgeagent.control import Control  # noqa: E402
from edgeagent.request_collector import RequestCollector  # noqa: E402
from support_http import Backends, free_port, request  # noqa: E402
from support_nginx import NginxRunner, render_site  # noqa: E402
from support_objects import endpoint_slice, ingress, path, rule, service  # noqa: E402

from edgeagent import dynamic, model  # noqa: E402

START_SECONDS = 30
HOST = "web1.example.com"


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            request(port, "probe", "/")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Tiers:
    """Both tiers on loopback, and the load on them."""

    def __init__(self, tmp_path: Path, edge_backend_up: bool) -> None:
        self.backends, self.runner, self.processes = Backends(), NginxRunner(), []
        backend = self.backends.start("web1")
        self.ingresses = [ingress("web1", rule(HOST, path("/", "web1")))]
        edge_port = backend.port if edge_backend_up else free_port()
        inputs = model.Inputs(
            ingresses=self.ingresses,
            services=[service("web1")],
            endpoint_slices=[endpoint_slice("web1", [(backend.host, True)], edge_port)],
        )
        site = render_site(tmp_path / "edge", inputs, dynamic_mode=True)
        self.runner.start(site)
        control = Control(str(site.directory / "dynamic"), f"127.0.0.1:{site.ports.status}")
        control.push(dynamic.state_of(site.model), full=True)
        registry = CollectorRegistry()
        registry.register(
            RequestCollector(
                control.request_counts,
                lambda: site.model.upstreams,
                lambda: {key_of(i): i for i in self.ingresses},
            )
        )
        self.edge_http, self.edge_metrics = site.ports.http, free_port()
        self.metrics_server, _ = start_http_server(self.edge_metrics, "127.0.0.1", registry)
        self.cluster_http, self.cluster_metrics = free_port(), free_port()
        self.processes.append(
            subprocess.Popen(
                [
                    *(sys.executable, str(REPO / "lab" / "seed_controller.py")),
                    *("--address", "127.0.0.1", "--route", f"{HOST}={backend.address}"),
                    *("--http-port", str(self.cluster_http)),
                    *("--health-port", str(self.cluster_metrics)),
                ]
            )
        )
        wait_for_port(self.cluster_http)
        self.stop = threading.Event()
        self.load = threading.Thread(target=self._load, daemon=True)
        self.load.start()

    def _load(self) -> None:
        """As LVS would: every client request to one tier or the other."""
        while not self.stop.is_set():
            for port in (self.edge_http, self.cluster_http):
                request(port, HOST, "/")

    def close(self) -> None:
        self.stop.set()
        self.load.join(timeout=30)
        self.metrics_server.shutdown()
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)
        self.runner.stop_all()
        self.backends.stop_all()


def run_cutover(tmp_path: Path, tiers, manifest: dict, steps: list[int], **env: str):
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    metrics = "http://127.0.0.1:{}/metrics"
    inventory = {
        "all": {
            "vars": {**local, "ansible_become": False},
            "hosts": {"localhost": local},
            "children": {
                "seed_directors": {
                    "hosts": {"dir1": {}},
                    "vars": {
                        "keepalived_lvs_cluster_node_group": "seed_nodes",
                        "keepalived_lvs_cutover_edge_group": "new_edges",
                    },
                },
                "seed_nodes": {
                    "hosts": {
                        "node1": {"cutover_metrics_url": metrics.format(tiers.cluster_metrics)}
                    }
                },
                "new_edges": {
                    "hosts": {"edge1": {"cutover_metrics_url": metrics.format(tiers.edge_metrics)}}
                },
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "ingresses.yaml").write_text(yaml.safe_dump(manifest))
    variables = {
        "cutover_directors": "seed_directors",
        "cutover_edgeagent": str(Path(sys.executable).with_name("edgeagent")),
        "cutover_migrate_args": ["-f", str(tmp_path / "ingresses.yaml"), "--ingress-class", "edge"],
        "cutover_steps": steps,
        "cutover_soak_seconds": 2,
        "cutover_thresholds": {  # max_error_points: its default
            # Loopback latencies on a busy machine vary a hundredfold: the errors decide here.
            "max_p99_increase_percent": 1_000_000,
            "min_requests": 10,
        },
        "cutover_report_dir": str(tmp_path / "reports"),
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            *("-i", str(tmp_path / "hosts.yml"), "-e", f"@{tmp_path / 'vars.json'}"),
            *("--skip-tags", "cutover-weights", str(REPO / "playbooks" / "cutover.yml")),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "NO_COLOR": "1",
            **env,
        },
        timeout=600,
    )
    reports = sorted((tmp_path / "reports").glob("*.json"))
    return result, [json.loads(p.read_text()) for p in reports]


@pytest.fixture
def tiers(request, tmp_path):
    built = Tiers(tmp_path, edge_backend_up=request.param)
    try:
        yield built
    finally:
        built.close()


def manifest(*annotations: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {**ingress("web1", rule(HOST, path("/", "web1")), annotations=a or None)}
            for a in annotations or ({},)
        ],
    }


@pytest.mark.parametrize("tiers", [True], indirect=True)
def test_a_healthy_edge_takes_every_step(tmp_path, tiers):
    result, reports = run_cutover(tmp_path, tiers, manifest(), [10, 100])
    assert result.returncode == 0, result.stdout + result.stderr
    (report,) = reports
    assert report["result"] == "completed" and int(report["percent"]) == 100
    assert [int(step["percent"]) for step in report["steps"]] == [10, 100]
    for step in report["steps"]:
        assert step["verdict"]["verdict"] == "pass", step
        assert step["edge"]["requests"] >= 10 and step["edge"]["errors"] == 0
        assert step["in_cluster"]["requests"] >= 10
    assert report["steps"][0]["weights"] == {"edge": 10, "cluster": 90}
    (png,) = (tmp_path / "reports").glob("*.png")
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("tiers", [False], indirect=True)
def test_an_edge_answering_502_rolls_back_with_the_reason(tmp_path, tiers):
    """Here without matplotlib on the controller: the PNG is left out with a warning, and
    the outcome and its JSON report are as ever."""
    no_matplotlib = tmp_path / "no-matplotlib"
    (no_matplotlib / "matplotlib").mkdir(parents=True)
    (no_matplotlib / "matplotlib" / "__init__.py").write_text("raise ImportError('removed')\n")
    path = os.pathsep.join(filter(None, [str(no_matplotlib), os.environ.get("PYTHONPATH")]))
    result, reports = run_cutover(tmp_path, tiers, manifest(), [10, 50, 100], PYTHONPATH=path)
    assert result.returncode != 0
    assert "Cutover stopped at 10 % and rolled back to 0 %" in result.stdout
    assert "WARNING: no PNG beside" in result.stdout and "removed" in result.stdout
    (report,) = reports
    assert report["result"] == "rolled back"
    assert (int(report["failed_step"]), int(report["percent"])) == (10, 0)
    assert "5xx rate" in report["reasons"][0]
    (step,) = report["steps"]
    assert step["edge"]["errors"] == step["edge"]["requests"] > 0
    assert step["verdict"]["verdict"] == "fail"
    assert list((tmp_path / "reports").glob("*.png")) == []


def test_an_ingress_the_edge_would_refuse_stops_it_before_any_step(tmp_path):
    nowhere = types.SimpleNamespace(cluster_metrics=free_port(), edge_metrics=free_port())
    snippet = {"nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers 'A: b';"}
    result, reports = run_cutover(tmp_path, nowhere, manifest(snippet), [10])
    assert result.returncode != 0
    assert "No cutover while the edge would refuse Ingresses: default/web1" in result.stdout
    assert reports == []
