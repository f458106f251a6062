"""The ciphers of a host's TLS server (annotations/sslciphers.py) through a real nginx, in
the static and the dynamic mode, tried with the `openssl s_client` command offering one
TLS 1.2 cipher at a time."""

import subprocess

import pytest
from support_http import request
from support_nginx import assert_only_rendered_directives, echo_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import annotations, cli, model

ANNOTATION = "nginx.ingress.kubernetes.io/"
CHOSEN = "ECDHE-ECDSA-AES128-GCM-SHA256"
OTHER = "ECDHE-ECDSA-AES256-GCM-SHA384"


def with_ciphers(name: str, host: str, ciphers: str, *paths: dict, created: str) -> dict:
    return ingress(
        name,
        rule(host, *(paths or (path("/", "site"),))),
        annotations={
            ANNOTATION + "ssl-ciphers": ciphers,
            ANNOTATION + "ssl-prefer-server-ciphers": "true",
        },
        tls=[{"hosts": [host], "secretName": "site-tls"}],
        created=created,
    )


def site_inputs(backend) -> model.Inputs:
    objects = model.Inputs()
    objects.services.append(service("site"))
    objects.endpoint_slices.append(endpoint_slice("site", [(backend.host, True)], backend.port))
    objects.secrets.append(tls_secret("site-tls", cli.self_signed("site", ("strict", "plain"))))
    objects.ingresses.extend(
        [
            with_ciphers("strict", "strict", CHOSEN, created="2026-01-01T00:00:00Z"),
            # Newer, same host, another list: a conflict, its path answers 503.
            with_ciphers(
                "conflicting",
                "strict",
                OTHER,
                path("/other", "site"),
                created="2026-02-01T00:00:00Z",
            ),
            ingress(
                "plain",
                rule("plain", path("/", "site")),
                tls=[{"hosts": ["plain"], "secretName": "site-tls"}],
            ),
        ]
    )
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    with echo_site(
        tmp_path_factory.mktemp("host-ciphers"),
        ["site"],
        lambda started: site_inputs(started["site"]),
        request.param == "dynamic",
    ) as built:
        yield built


def handshake(site, host: str, cipher: str) -> bool:
    """Whether a TLS 1.2 handshake offering only `cipher`, with SNI `host`, succeeds."""
    tried = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{site.ports.https}",
            "-servername",
            host,
            "-tls1_2",
            "-cipher",
            cipher,
        ],
        input=b"",
        capture_output=True,
        timeout=30,
        check=False,
    )
    return tried.returncode == 0


def test_the_rendered_configuration_holds_only_template_directives(site):
    assert_only_rendered_directives(site.directory / "nginx.conf")


def test_a_cipher_of_the_list_gets_through(site):
    assert handshake(site, "strict", CHOSEN)
    assert request(site.ports.https, "strict", "/page", tls=True).status == 200


def test_a_cipher_outside_the_list_fails_the_handshake(site):
    assert not handshake(site, "strict", OTHER)


def test_a_host_without_a_list_keeps_the_edge_default(site):
    assert handshake(site, "plain", OTHER)
    assert handshake(site, "plain", CHOSEN)


def test_a_conflicting_list_answers_503_and_is_reported(site):
    assert request(site.ports.https, "strict", "/other", tls=True).status == 503
    reasons = {(p.name, p.code): p.reason for p in site.model.problems}
    assert "offers those of default/strict" in reasons["conflicting", "conflict"]


def findings(values: dict[str, str]) -> dict[str, tuple[str, str]]:
    parsed = annotations.parse(
        {ANNOTATION + key: value for key, value in values.items()}, annotations.Config()
    )
    return {f.key[len(ANNOTATION) :]: (f.status, f.reason) for f in parsed.findings}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("  ", "is empty"),
        ("NO-SUCH-CIPHER", "'NO-SUCH-CIPHER' names no cipher"),
        ("HIGH:ECDHE-RSA-AES128-GCM-SHA265", "'ECDHE-RSA-AES128-GCM-SHA265' names no cipher"),
        ("RC4-SHA:HIGH", "'RC4-SHA' names no cipher"),
        ("!HIGH", "OpenSSL selects no cipher"),
        ("HIGH;", "is not an OpenSSL cipher list"),
        ("HIGH AES", "is not an OpenSSL cipher list"),
        ("HIGH@SECLEVEL=9", "is not an OpenSSL cipher list"),
    ],
)
def test_unknown_or_empty_lists_are_refused_with_the_reason(value, reason):
    status, why = findings({"ssl-ciphers": value})["ssl-ciphers"]
    assert status == "refused" and reason in why, why


@pytest.mark.parametrize(
    "value",
    [
        "HIGH:!aNULL:!MD5",
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
        "ALL:!aNULL:!RC4:+HIGH:+MEDIUM@STRENGTH",
        "DEFAULT@SECLEVEL=2",
    ],
)
def test_usual_lists_are_accepted(value):
    assert findings({"ssl-ciphers": value})["ssl-ciphers"][0] == "supported"


def test_prefer_server_ciphers_takes_ingress_nginx_booleans():
    assert findings({"ssl-prefer-server-ciphers": "false"})["ssl-prefer-server-ciphers"][0] == (
        "supported"
    )
    assert findings({"ssl-prefer-server-ciphers": "on"})["ssl-prefer-server-ciphers"][0] == (
        "refused"
    )
