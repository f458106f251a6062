"""`edgeagent migrate`: the report on a realistic mixed set of ingress-nginx manifests
(golden), its JSON shape, old apiVersions read as v1, and a live cluster (the emulator)
read through a kubeconfig. Regenerate the golden reports after an intended change with

    EDGEAGENT_UPDATE_GOLDEN=1 .venv/bin/pytest -q edgeagent/tests/test_migrate.py
"""

import json
import os
from pathlib import Path

import kubernetes
import pytest
import yaml
from kubeemu.testing import EmulatorThread

from edgeagent import cli, ingress_versions, migrate

CASE = Path(__file__).resolve().parent / "golden" / "migrate"
UPDATE = os.environ.get("EDGEAGENT_UPDATE_GOLDEN") == "1"
ANNOTATION_KEYS = {"key", "value", "status", "reason"}


def run_migrate(capsys, monkeypatch, *arguments: str) -> tuple[int, str]:
    # Paths in the report are relative to the directory it was run from.
    monkeypatch.chdir(CASE / "input")
    code = cli.main(["migrate", "-f", ".", "--configmap", "../configmap.yaml", *arguments])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("form, arguments", [("report.txt", ()), ("report.json", ("--json",))])
def test_report_of_a_mixed_set_of_manifests(capsys, monkeypatch, form, arguments):
    code, out = run_migrate(capsys, monkeypatch, *arguments)
    assert code == 1  # some Ingresses would be refused
    expected = CASE / "expected" / form
    if UPDATE:
        expected.parent.mkdir(exist_ok=True)
        expected.write_text(out)
    assert out == expected.read_text()


def test_json_has_the_documented_shape(capsys, monkeypatch):
    _, out = run_migrate(capsys, monkeypatch, "--json")
    report = json.loads(out)
    assert set(report) == {"ingresses", "configmap"}
    assert report["ingresses"], "the set has Ingresses of class nginx"
    for ingress in report["ingresses"]:
        assert set(ingress) == {"namespace", "name", "verdict", "annotations", "problems"}
        assert ingress["verdict"] in ("served", "served-with-warnings", "refused")
        assert all(isinstance(problem, str) for problem in ingress["problems"])
        for annotation in ingress["annotations"]:
            assert set(annotation) == ANNOTATION_KEYS
            assert annotation["status"] in ("supported", "ignored", "refused")
            assert (annotation["reason"] == "") == (annotation["status"] == "supported")
        statuses = {annotation["status"] for annotation in ingress["annotations"]}
        if "refused" in statuses:
            assert ingress["verdict"] == "refused"
        if ingress["verdict"] == "served":
            assert statuses <= {"supported"} and not ingress["problems"]
    assert set(report["configmap"]) == {"role_variables", "not_reproduced"}
    assert all(name.startswith("edgeagent_") for name in report["configmap"]["role_variables"])


def test_only_the_class_asked_for_is_reported(capsys, monkeypatch):
    _, out = run_migrate(capsys, monkeypatch, "--json", "--ingress-class", "traefik")
    names = [(i["namespace"], i["name"]) for i in json.loads(out)["ingresses"]]
    assert names == [("default", "internal")]


def test_an_old_ingress_reads_as_the_v1_it_converts_to():
    old = next(yaml.safe_load_all((CASE / "input" / "legacy.yaml").read_text()))
    converted, note = ingress_versions.to_v1(old)
    assert converted["apiVersion"] == "networking.k8s.io/v1"
    assert converted["spec"]["defaultBackend"] == {
        "service": {"name": "argocd-server", "port": {"name": "https"}}
    }
    assert "backend" not in converted["spec"]
    path = converted["spec"]["rules"][0]["http"]["paths"][0]
    assert path == {
        "path": "/",
        "pathType": "ImplementationSpecific",
        "backend": {"service": {"name": "argocd-server", "port": {"number": 443}}},
    }
    assert note.startswith("apiVersion extensions/v1beta1 read as networking.k8s.io/v1: ")
    assert old["spec"]["backend"]["serviceName"] == "argocd-server"  # the input is untouched


def test_configmap_maps_to_the_role_variables():
    report = migrate.configmap({"ssl-redirect": "false", "proxy-send-timeout": "600"})
    assert report.role_variables == {
        "edgeagent_proxy_send_timeout": 600,
        "edgeagent_ssl_redirect": False,
    }
    assert report.not_reproduced == ()


def test_a_live_cluster_through_a_kubeconfig(tmp_path, capsys):
    with EmulatorThread() as api:
        client = api.api_client()
        networking = kubernetes.client.NetworkingV1Api(client)
        core = kubernetes.client.CoreV1Api(client)
        for document in yaml.safe_load_all((CASE / "input" / "websocket.yaml").read_text()):
            networking.create_namespaced_ingress("chat", document)
        snippets = yaml.safe_load((CASE / "input" / "snippets.yaml").read_text())
        networking.create_namespaced_ingress("ops", snippets)
        configmap = yaml.safe_load((CASE / "configmap.yaml").read_text())
        core.create_namespaced_config_map("ingress-nginx", configmap)
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        code = cli.main(
            [
                "migrate",
                "--kubeconfig",
                kubeconfig,
                "--configmap",
                "ingress-nginx/ingress-nginx-controller",
                "--json",
            ]
        )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    verdicts = {(i["namespace"], i["name"]): i["verdict"] for i in report["ingresses"]}
    assert verdicts == {
        ("chat", "chat-ws"): "served-with-warnings",
        ("ops", "dashboard"): "refused",
    }
    dashboard = next(i for i in report["ingresses"] if i["name"] == "dashboard")
    refused = {a["key"] for a in dashboard["annotations"] if a["status"] == "refused"}
    assert refused == {
        "nginx.ingress.kubernetes.io/configuration-snippet",
        "nginx.ingress.kubernetes.io/server-snippet",
    }
    assert report["configmap"]["role_variables"]["edgeagent_proxy_body_size"] == "50m"


def test_an_unreachable_cluster_is_an_error(tmp_path, capsys):
    with EmulatorThread() as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        api.stop_serving()
        code = cli.main(["migrate", "--kubeconfig", kubeconfig])
    assert code == 2
    assert "edgeagent: error: listing ingresses" in capsys.readouterr().err


def test_files_and_a_cluster_together_are_refused(tmp_path, capsys):
    code = cli.main(["migrate", "-f", str(CASE / "input"), "--kubeconfig", str(tmp_path / "kc")])
    assert code == 2
    assert "either -f" in capsys.readouterr().err
