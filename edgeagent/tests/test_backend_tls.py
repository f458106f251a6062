"""TLS towards backends (annotations/proxyssl.py) through a real nginx, in the static and
the dynamic mode, to real TLS backends whose CAs and certificates the `cryptography`
package makes: verification passing and failing, the client certificate presented to a
backend that requires one, the SNI name sent, the protocol and cipher asked for."""

import base64
import datetime
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support_http import request
from support_nginx import NginxRunner, assert_only_rendered_directives, render_site
from support_objects import endpoint_slice, ingress, path, rule, service

from edgeagent import annotations, model

ANNOTATION = "nginx.ingress.kubernetes.io/"
BACKEND_NAME = "backend.internal"
TLS12_CIPHER = "ECDHE-ECDSA-AES128-GCM-SHA256"


class Authority:
    """A CA, and the certificates (with their keys, PEM) it issues."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM)

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

    def issue(self, common_name: str, *dns_names: str) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for `common_name`, valid for `dns_names`."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = self._builder(subject, key.public_key())
        if dns_names:
            names = [x509.DNSName(name) for name in dns_names]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        return (
            certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


class _Handler(BaseHTTPRequestHandler):
    """Answers with what the TLS connection carried: SNI, client certificate, protocol."""

    def do_GET(self) -> None:
        peer = self.request.getpeercert()
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        body = json.dumps(
            {
                "sni": getattr(self.request, "sni", None),
                "client": subject.get("commonName"),
                "version": self.request.version(),
                "cipher": self.request.cipher()[0],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        """Quiet: pytest output stays readable."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """Quiet: a refused handshake is what some tests ask for."""


class TLSBackend:
    """An HTTPS backend on loopback with a certificate of `authority` for BACKEND_NAME; it
    asks for a client certificate of `clients` (required with `require_client`)."""

    def __init__(self, directory: Path, authority: Authority, clients: Authority, require_client):
        certificate, key = authority.issue(BACKEND_NAME, BACKEND_NAME)
        pair = directory / f"backend-{id(self)}.pem"
        pair.write_bytes(certificate + key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pair)
        context.load_verify_locations(cadata=clients.pem.decode())
        context.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL

        def remember_sni(tls_socket, server_name, _context) -> None:
            tls_socket.sni = server_name

        context.sni_callback = remember_sni
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def secret(name: str, ca: bytes | None = None, client: tuple[bytes, bytes] | None = None) -> dict:
    data = {}
    if ca is not None:
        data["ca.crt"] = ca
    if client is not None:
        data["tls.crt"], data["tls.key"] = client
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": "default"},
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def to_backend(host: str, service_name: str, **values: str) -> dict:
    """An Ingress of host `host` (its name too) to an HTTPS backend; `values`: proxy-ssl-*
    without the prefix (`verify="on"`), and backend-protocol if not HTTPS."""
    written = {ANNOTATION + "backend-protocol": values.pop("backend_protocol", "HTTPS")}
    written |= {ANNOTATION + "proxy-ssl-" + key.replace("_", "-"): v for key, v in values.items()}
    return ingress(host, rule(host, path("/", service_name)), annotations=written)


@pytest.fixture(scope="module")
def authorities():
    return Authority("backend CA"), Authority("edge client CA"), Authority("stranger CA")


@pytest.fixture(scope="module")
def backends(tmp_path_factory, authorities):
    backend_ca, client_ca, _ = authorities
    directory = tmp_path_factory.mktemp("backends")
    started = {
        "open": TLSBackend(directory, backend_ca, client_ca, require_client=False),
        "strict": TLSBackend(directory, backend_ca, client_ca, require_client=True),
    }
    yield started
    for backend in started.values():
        backend.stop()


def backend_inputs(backends: dict[str, TLSBackend], authorities) -> model.Inputs:
    backend_ca, client_ca, stranger = authorities
    objects = model.Inputs()
    for name, backend in backends.items():
        objects.services.append(service(name))
        objects.endpoint_slices.append(endpoint_slice(name, [("127.0.0.1", True)], backend.port))
    client = client_ca.issue("edge-client")
    half = secret("half", backend_ca.pem, client)
    del half["data"]["tls.key"]
    objects.secrets.extend(
        [
            secret("backend", backend_ca.pem, client),
            secret("ca-only", backend_ca.pem),
            secret("stranger", stranger.pem, client),
            half,
            secret("no-ca", None, client),
        ]
    )
    verified = {"secret": "backend", "verify": "on", "name": BACKEND_NAME, "server_name": "on"}
    objects.ingresses.extend(
        [
            to_backend("verified", "strict", **verified, verify_depth="2"),
            to_backend("wrong-name", "open", **{**verified, "name": "other.internal"}),
            to_backend("untrusted", "open", **{**verified, "secret": "default/stranger"}),
            to_backend("unverified", "open", secret="stranger"),
            to_backend("no-client", "strict", secret="ca-only", verify="on", name=BACKEND_NAME),
            to_backend(
                "tls12",
                "open",
                **verified,
                protocols="TLSv1.2",
                ciphers=TLS12_CIPHER,
            ),
            to_backend("missing", "open", secret="nowhere"),
            to_backend("half", "open", secret="half"),
            to_backend("no-ca", "open", secret="no-ca"),
            to_backend("elsewhere", "open", secret="other/backend"),
            to_backend("plain", "open", secret="backend", verify="on", backend_protocol="HTTP"),
        ]
    )
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory, backends, authorities):
    runner = NginxRunner()
    try:
        built = render_site(
            tmp_path_factory.mktemp("backend-tls"),
            backend_inputs(backends, authorities),
            dynamic_mode=request.param == "dynamic",
        )
        runner.start(built)
        yield built
    finally:
        runner.stop_all()


def get(site, host: str):
    return request(site.ports.http, host, "/page")


def test_the_rendered_configuration_holds_only_template_directives(site):
    assert_only_rendered_directives(site.directory / "nginx.conf")


def test_a_verified_backend_gets_the_name_by_sni_and_the_client_certificate(site):
    answer = get(site, "verified")
    assert answer.status == 200
    assert answer.echo["sni"] == BACKEND_NAME
    assert answer.echo["client"] == "edge-client"


def test_a_failed_verification_answers_502(site):
    assert get(site, "wrong-name").status == 502
    assert get(site, "untrusted").status == 502


def test_without_verification_any_certificate_is_taken_and_no_sni_sent(site):
    answer = get(site, "unverified")
    assert answer.status == 200
    assert answer.echo["sni"] is None


def test_a_backend_requiring_a_client_certificate_refuses_one_without(site):
    assert get(site, "no-client").status == 502


def test_the_protocol_and_cipher_asked_for_are_spoken(site):
    answer = get(site, "tls12")
    assert answer.status == 200
    assert answer.echo["version"] == "TLSv1.2"
    assert answer.echo["cipher"] == TLS12_CIPHER


def test_unusable_secrets_answer_503_and_are_reported(site):
    for host in ("missing", "half", "no-ca"):
        assert get(site, host).status == 503, host
    reasons = {(p.name, p.code): p.reason for p in site.model.problems}
    assert "the Secret does not exist" in reasons["missing", "secret"]
    assert "the Secret has one of tls.crt and tls.key" in reasons["half", "secret"]
    assert "the Secret lacks ca.crt" in reasons["no-ca", "secret"]


def test_another_namespace_and_plain_verification_are_refused(site):
    reasons = {(p.name, p.code): p.reason for p in site.model.problems}
    assert "only the Ingress's own namespace" in reasons["elsewhere", "unsupported"]
    assert "no certificate to verify" in reasons["plain", "unsupported"]
    assert ("default", "elsewhere") not in site.model.served_ingresses
    assert ("default", "plain") not in site.model.served_ingresses


def findings(values: dict[str, str]) -> dict[str, tuple[str, str]]:
    parsed = annotations.parse(
        {ANNOTATION + key: value for key, value in values.items()}, annotations.Config()
    )
    return {f.key[len(ANNOTATION) :]: (f.status, f.reason) for f in parsed.findings}


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({"proxy-ssl-verify": "on"}, "proxy-ssl-verify"),
        ({"proxy-ssl-secret": "s", "proxy-ssl-verify": "yes"}, "proxy-ssl-verify"),
        ({"proxy-ssl-secret": "s", "proxy-ssl-verify-depth": "0"}, "proxy-ssl-verify-depth"),
        ({"proxy-ssl-secret": "s", "proxy-ssl-name": "*.a.example"}, "proxy-ssl-name"),
        ({"proxy-ssl-secret": "s", "proxy-ssl-name": "$host"}, "proxy-ssl-name"),
        ({"proxy-ssl-secret": "s", "proxy-ssl-server-name": "true"}, "proxy-ssl-server-name"),
        ({"proxy-ssl-secret": "s", "proxy-ssl-protocols": "TLSv1.4"}, "proxy-ssl-protocols"),
        ({"proxy-ssl-secret": "s", "proxy-ssl-protocols": " "}, "proxy-ssl-protocols"),
        ({"proxy-ssl-secret": "s", "proxy-ssl-ciphers": "NO-SUCH-CIPHER"}, "proxy-ssl-ciphers"),
        ({"proxy-ssl-secret": "s", "proxy-ssl-ciphers": ""}, "proxy-ssl-ciphers"),
        ({"proxy-ssl-secret": "a/b/c"}, "proxy-ssl-secret"),
    ],
)
def test_malformed_or_incomplete_annotations_refuse_the_ingress(values, refused):
    assert findings({"backend-protocol": "HTTPS", **values})[refused][0] == "refused"


def test_options_without_a_secret_or_on_a_plain_backend_are_warnings():
    alone = findings({"proxy-ssl-name": "a.example", "proxy-ssl-verify": "off"})
    assert alone["proxy-ssl-name"][0] == alone["proxy-ssl-verify"][0] == "ignored"
    assert "applies only with" in alone["proxy-ssl-name"][1]
    plain = findings({"proxy-ssl-secret": "s", "proxy-ssl-server-name": "on"})
    assert plain["proxy-ssl-secret"][0] == plain["proxy-ssl-server-name"][0] == "ignored"
    assert "without TLS" in plain["proxy-ssl-secret"][1]


def test_protocols_are_sorted_without_repeats_as_ingress_nginx_writes_them():
    parsed = annotations.parse(
        {
            ANNOTATION + "backend-protocol": "GRPCS",
            ANNOTATION + "proxy-ssl-secret": "s",
            ANNOTATION + "proxy-ssl-protocols": "TLSv1.3  TLSv1.2 TLSv1.3",
        },
        annotations.Config(),
    )
    assert parsed.settings["backend_tls"].protocols == "TLSv1.2 TLSv1.3"


def test_each_policy_keeps_its_own_connections(site):
    """A connection (or TLS session) one policy made, unverified and with another cipher,
    is never lent to a location verifying with other CAs or asking for one cipher."""
    assert get(site, "unverified").echo["cipher"] != TLS12_CIPHER
    assert get(site, "untrusted").status == 502
    assert get(site, "tls12").echo["cipher"] == TLS12_CIPHER
    assert get(site, "unverified").echo["cipher"] != TLS12_CIPHER
