"""lab/manifests/annotated.yaml without the lab: `edgeagent migrate` serves every Ingress of
it as is (in the dynamic mode, as the lab runs), its certificate is good for its host for
long, and the verify suite's reader of it (tests/verify/labmanifest.py) leaves its checks
out wherever the manifest cannot be in the API."""

import datetime
import json
import ssl
import sys
from pathlib import Path

import pytest
from cryptography import x509

from edgeagent import cli

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests" / "verify")]

import labmanifest  # noqa: E402


def test_migrate_serves_every_ingress_of_the_manifest_as_is(capsys):
    argv = ["migrate", "--json", "--ingress-class", "edge", "-f", str(labmanifest.MANIFEST)]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    verdicts = {i["name"]: i["verdict"] for i in report["ingresses"]}
    names = {o["metadata"]["name"] for o in labmanifest.objects() if o["kind"] == "Ingress"}
    assert verdicts == dict.fromkeys(names, "served")


def test_the_certificate_is_for_its_host_for_long():
    certificate = x509.load_pem_x509_certificate(labmanifest.certificate("lab-tls").encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == [labmanifest.host("lab-tls")]
    assert certificate.not_valid_after_utc > datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)
    ssl.create_default_context(cadata=labmanifest.certificate("lab-tls"))  # a CA to trust


def test_the_checks_need_a_kubeconfig_an_answer_and_the_manifest(tmp_path, monkeypatch):
    assert not labmanifest.applied("")
    unanswered = tmp_path / "kubeconfig"
    unanswered.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    assert not labmanifest.applied(str(unanswered))
    monkeypatch.setattr(labmanifest, "MANIFEST", tmp_path / "absent.yaml")
    assert not labmanifest.applied(str(unanswered))


@pytest.mark.parametrize("name", ["AUTH_TOKEN", "AUTH_USER", "SLOW_PATH"])
def test_the_checks_read_the_backends_facts_from_it(name):
    assert getattr(labmanifest.backend(), name)
