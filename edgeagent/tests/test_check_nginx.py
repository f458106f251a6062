"""`edgeagent check` runs nginx -t on the candidate when it finds nginx, and lists the host
servers the agent would quarantine with their objects (nginx_check.py); without nginx it
says that it did not run the test.

nginx must refuse a server that the agent's own checks accept: here nginx reads a stricter
OpenSSL policy (security level 3: RSA keys of 3072 bits at least) than the one this process
loaded when it started (Debian's level 2), as on a node whose policy was raised after the
agent started. Real nginx, real OpenSSL."""

import ssl

import pytest
import yaml
from edgeagent.grammar import CertPair
from support_objects import endpoint_slice, ingress, openssl_pair, rule, service, tls_secret
from support_objects import path as backend_path

from edgeagent import cli

STRICTER_OPENSSL = """\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_section
[ssl_section]
system_default = system_default_section
[system_default_section]
CipherString = DEFAULT@SECLEVEL=3
"""


@pytest.fixture
def manifests(tmp_path):
    """team-a serves a.example.com with an RSA-2048 pair, team-b b.example.com over HTTP."""
    certificate, key = openssl_pair(tmp_path, 2048, "sha256")
    a = ingress("a", rule("a.example.com", backend_path("/", "app")), namespace="team-a")
    a["spec"]["tls"] = [{"hosts": ["a.example.com"], "secretName": "tls"}]
    objects = [
        tls_secret("tls", CertPair(certificate, key), namespace="team-a"),
        a,
        service("app", namespace="team-a"),
        endpoint_slice("app", [("10.244.1.5", True)], 80, namespace="team-a"),
        ingress("b", rule("b.example.com", backend_path("/", "app")), namespace="team-b"),
        service("app", namespace="team-b"),
        endpoint_slice("app", [("10.244.2.5", True)], 80, namespace="team-b"),
    ]
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "all.yaml").write_text(yaml.safe_dump_all(objects))
    return directory


def test_what_nginx_accepts_passes(manifests, capsys):
    assert cli.main(["check", "-f", str(manifests)]) == 0
    printed = capsys.readouterr()
    assert printed.out == ""
    assert "-t: 0 quarantined objects" in printed.err


def test_a_server_nginx_refuses_is_listed_with_its_object(manifests, tmp_path, monkeypatch, capsys):
    ssl.create_default_context()  # this process's OpenSSL policy is loaded, once
    stricter = tmp_path / "openssl.cnf"
    stricter.write_text(STRICTER_OPENSSL)
    monkeypatch.setenv("OPENSSL_CONF", str(stricter))  # read by nginx only
    assert cli.main(["check", "-f", str(manifests), "--nginx", "/usr/sbin/nginx"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("Ingress team-a/a: nginx -t refuses the server of host a.example.com: ")
    assert "ee key too small" in line
    assert line.endswith("; it keeps no server")


def test_without_nginx_check_says_it_did_not_run_the_test(manifests, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.main(["check", "-f", str(manifests)]) == 0
    assert "nginx -t was not run" in capsys.readouterr().err


def test_a_given_nginx_that_is_not_there_is_an_error(manifests, tmp_path, capsys):
    missing = str(tmp_path / "nginx")
    assert cli.main(["check", "-f", str(manifests), "--nginx", missing]) == 2
    assert f"{missing}: not an executable" in capsys.readouterr().err
