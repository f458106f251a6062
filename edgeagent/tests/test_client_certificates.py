"""Client certificates (annotations/clientcert.py) through a real nginx, in the static and
the dynamic mode, with CAs and client certificates made by the `cryptography` package."""

import base64
import datetime
import http.client
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support_nginx import assert_only_rendered_directives, echo_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import annotations, cli, model

ANNOTATION = "nginx.ingress.kubernetes.io/"
HOSTS = ("mtls", "optional", "match", "errorpage", "missing")


class Authority:
    """A CA and the client certificates it signs, as PEM files for the client."""

    def __init__(self, name: str, directory) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.directory = directory

    def _builder(self, subject: x509.Name, public_key) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def client(self, common_name: str) -> str:
        """The path of a PEM file with a client certificate and its key."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        certificate = self._builder(subject, key.public_key()).sign(self.key, hashes.SHA256())
        path = self.directory / f"{common_name}.pem"
        path.write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(path)


def ca_secret(name: str, pem: bytes) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"ca.crt": base64.b64encode(pem).decode()},
    }


def verified(
    name: str, host: str, secret: str, *paths: dict, created: str | None = None, **values: str
) -> dict:
    written = {ANNOTATION + "auth-tls-secret": secret}
    written |= {ANNOTATION + "auth-tls-" + key.replace("_", "-"): v for key, v in values.items()}
    return ingress(
        name,
        rule(host, *(paths or (path("/", "site"),))),
        annotations=written,
        tls=[{"hosts": [host], "secretName": "site-tls"}],
        created=created,
    )


@pytest.fixture(scope="module")
def authorities(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clients")
    return Authority("edge test CA", directory), Authority("another CA", directory)


def site_inputs(backend, trusted: Authority, other: Authority) -> model.Inputs:
    objects = model.Inputs()
    objects.services.append(service("site"))
    objects.endpoint_slices.append(endpoint_slice("site", [(backend.host, True)], backend.port))
    pair = cli.self_signed("site", HOSTS)
    objects.secrets.extend(
        [tls_secret("site-tls", pair), ca_secret("ca", trusted.pem), ca_secret("other", other.pem)]
    )
    objects.ingresses.extend(
        [
            verified(
                "mtls",
                "mtls",
                "ca",
                created="2026-01-01T00:00:00Z",
                verify_depth="2",
                pass_certificate_to_upstream="true",
            ),
            verified("optional", "optional", "default/ca", verify_client="optional"),
            verified("match", "match", "ca", match_cn="CN=(someone|nobody)$"),
            verified("errorpage", "errorpage", "ca", error_page="https://login.example/cert"),
            verified("missing", "missing", "nowhere"),
            ingress(
                "plain",
                rule("plain", path("/", "site")),
                annotations={ANNOTATION + "auth-tls-secret": "ca"},
            ),
            # Newer, same host as mtls, another CA: a conflict, its path answers 503.
            verified(
                "conflicting",
                "mtls",
                "other",
                path("/other", "site"),
                created="2026-02-01T00:00:00Z",
                verify_client="optional",
            ),
        ]
    )
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory, authorities):
    with echo_site(
        tmp_path_factory.mktemp("client-certificates"),
        ["site"],
        lambda started: site_inputs(started["site"], *authorities),
        request.param == "dynamic",
    ) as built:
        yield built


def get(site, host: str, client: str | None = None, target: str = "/page"):
    """One HTTPS request with SNI and Host `host`, presenting `client` (a PEM file) if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if client is not None:
        context.load_cert_chain(client)
    with (
        socket.create_connection(("127.0.0.1", site.ports.https), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = http.client.HTTPResponse(tls)
        answer.begin()
        body = answer.read()
        headers = {k.lower(): v for k, v in answer.getheaders()}
        return answer.status, headers, body


def echoed(body: bytes) -> dict:
    import json

    return {k.lower(): v for k, v in json.loads(body)["headers"].items()}


def test_the_rendered_configuration_holds_only_template_directives(site):
    assert_only_rendered_directives(site.directory / "nginx.conf")


def test_no_certificate_gets_400(site):
    assert get(site, "mtls")[0] == 400


def test_the_right_certificate_gets_through_with_its_headers(site, authorities):
    status, _, body = get(site, "mtls", authorities[0].client("client"))
    assert status == 200
    headers = echoed(body)
    assert headers["ssl-client-verify"] == "SUCCESS"
    assert headers["ssl-client-subject-dn"] == "CN=client"
    assert headers["ssl-client-issuer-dn"] == "CN=edge test CA"
    assert headers["ssl-client-cert"].startswith("-----BEGIN%20CERTIFICATE-----")


def test_a_certificate_of_another_ca_gets_400(site, authorities):
    assert get(site, "mtls", authorities[1].client("intruder"))[0] == 400


def test_plain_http_to_a_verified_host_gets_400(site):
    connection = http.client.HTTPConnection("127.0.0.1", site.ports.http, timeout=10)
    connection.request("GET", "/page", headers={"Host": "mtls"})
    assert connection.getresponse().status == 308  # ssl-redirect first, as ingress-nginx
    connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", site.ports.http, timeout=10)
    connection.request("GET", "/page", headers={"Host": "plain"})
    assert connection.getresponse().status == 400  # never the backend unverified
    connection.close()


def test_optional_lets_a_client_without_certificate_through(site, authorities):
    status, _, body = get(site, "optional")
    assert status == 200 and echoed(body)["ssl-client-verify"] == "NONE"
    assert get(site, "optional", authorities[0].client("client"))[0] == 200


def test_match_cn_answers_403_to_another_name(site, authorities):
    assert get(site, "match", authorities[0].client("client"))[0] == 403
    assert get(site, "match", authorities[0].client("someone"))[0] == 200


def test_the_error_page_takes_a_failed_verification(site):
    status, headers, _ = get(site, "errorpage")
    assert status == 302 and headers["location"] == "https://login.example/cert"


def test_missing_secret_and_conflict_answer_503_and_are_reported(site, authorities):
    assert get(site, "missing", authorities[0].client("client"))[0] == 503
    assert get(site, "mtls", authorities[0].client("client"), "/other")[0] == 503
    reasons = {(p.name, p.code): p.reason for p in site.model.problems}
    assert "the Secret does not exist" in reasons["missing", "secret"]
    assert "verifies those of default/mtls" in reasons["conflicting", "conflict"]


def findings(values: dict[str, str]) -> dict[str, tuple[str, str]]:
    parsed = annotations.parse(
        {ANNOTATION + key: value for key, value in values.items()}, annotations.Config()
    )
    return {f.key[len(ANNOTATION) :]: (f.status, f.reason) for f in parsed.findings}


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({"auth-tls-verify-client": "on"}, "auth-tls-verify-client"),
        ({"auth-tls-secret": "ca", "auth-tls-verify-client": "yes"}, "auth-tls-verify-client"),
        ({"auth-tls-secret": "ca", "auth-tls-verify-depth": "0"}, "auth-tls-verify-depth"),
        ({"auth-tls-secret": "ca", "auth-tls-match-cn": 'CN=a"; x'}, "auth-tls-match-cn"),
        ({"auth-tls-secret": "ca", "auth-tls-match-cn": "CN=(a"}, "auth-tls-match-cn"),
        ({"auth-tls-secret": "ca", "auth-tls-match-cn": "name"}, "auth-tls-match-cn"),
        ({"auth-tls-secret": "ca", "auth-tls-error-page": "x;y"}, "auth-tls-error-page"),
        ({"auth-tls-secret": "a/b/c"}, "auth-tls-secret"),
    ],
)
def test_malformed_or_incomplete_annotations_refuse_the_ingress(values, refused):
    assert findings(values)[refused][0] == "refused"


def test_pass_certificate_false_alone_is_only_a_warning():
    status, reason = findings({"auth-tls-pass-certificate-to-upstream": "false"})[
        "auth-tls-pass-certificate-to-upstream"
    ]
    assert status == "ignored" and "off, as without it" in reason


def test_ingresses_differing_only_in_their_paths_checks_share_a_host(authorities):
    objects = model.Inputs()
    objects.services.append(service("site"))
    objects.secrets.extend(
        [ca_secret("ca", authorities[0].pem), ca_secret("same", authorities[0].pem)]
    )
    objects.ingresses.extend(
        [
            verified("a", "shared", "ca", path("/a", "site"), match_cn="CN=a"),
            verified(
                "b", "shared", "same", path("/b", "site"), pass_certificate_to_upstream="true"
            ),
        ]
    )
    built = model.build(objects, model.Options())
    assert not [p for p in built.problems if p.code == "conflict"]
    (server,) = [s for s in built.servers if s.host == "shared"]
    assert server.client_certificates.ca == authorities[0].pem
