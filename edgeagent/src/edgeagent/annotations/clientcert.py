"""Client certificates (ingress-nginx: annotations/authtls, nginx.tmpl's `ssl_verify_client`).

`auth-tls-secret` names a Secret whose `ca.crt` holds the CAs a client certificate must
chain to (and `ca.crl`, if there, the revoked ones). nginx asks for the certificate in the
TLS handshake of the host's server (`ssl_client_certificate`, `ssl_verify_client`,
`ssl_verify_depth`, `ssl_crl`), so it is a setting of the host, not of a path: every
Ingress on the host is verified (as in ingress-nginx), and two Ingresses on one host asking
for different verification are a conflict, the newer one's paths answering 503.

- `auth-tls-verify-client`: `on` (default; no certificate or an untrusted one: 400),
  `optional`, `optional_no_ca` (any certificate, the backend judges), `off`.
- `auth-tls-verify-depth`: the longest chain, 1 (default) to 100.
- `auth-tls-error-page`: an http(s) URL that a failed verification redirects to.
- `auth-tls-pass-certificate-to-upstream`: the backend gets the certificate, URL-encoded
  PEM, as `ssl-client-cert`. It always gets `ssl-client-verify`, `ssl-client-subject-dn`
  and `ssl-client-issuer-dn`, as ingress-nginx sends them.
- `auth-tls-match-cn`: a regular expression the certificate's subject DN must match
  (`CN=name` or `CN=(a|b)`), else 403.

Plain HTTP carries no certificate: with `on`, a plain HTTP request is answered 400 too
(ingress-nginx passed it on unverified). A missing or malformed Secret makes the Ingress's
paths answer 503, as ingress-nginx's denied locations do.
"""

import re
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from edgeagent import grammar
from edgeagent.annotations.basicauth import content_file, secret_reference
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

SECRET, VERIFY, DEPTH = "auth-tls-secret", "auth-tls-verify-client", "auth-tls-verify-depth"
ERROR_PAGE, PASS = "auth-tls-error-page", "auth-tls-pass-certificate-to-upstream"
MATCH_CN = "auth-tls-match-cn"
OPTIONS = (VERIFY, DEPTH, ERROR_PAGE, PASS, MATCH_CN)
KEYS = (SECRET, *OPTIONS)
VERIFY_MODES = ("on", "off", "optional", "optional_no_ca")
DEPTH_MAX = 100
# A subject DN regex: letters, digits and regex syntax, never a quote, ';', '{' or blank.
CN_PATTERN = re.compile(r"CN=([A-Za-z0-9\-._~*+?|^$()\[\],=@]|\\[-.*+?()|^$\[\]])+")
CN_MAX = 256
# The headers a backend gets, as ingress-nginx sends them, and nginx's $ssl_client_ names.
HEADERS = {
    "ssl-client-verify": "verify",
    "ssl-client-subject-dn": "s_dn",
    "ssl-client-issuer-dn": "i_dn",
    "ssl-client-cert": "escaped_cert",
}


@dataclass(frozen=True)
class ClientCertificates:
    secret: tuple[str | None, str]
    verify: str = "on"
    depth: int = 1
    error_page: str | None = None
    pass_certificate: bool = False
    match_cn: str | None = None
    ca: bytes | None = None
    """The checked CA certificates (PEM) once resolved; None: the Secret is unusable."""
    crl: bytes | None = None

    @property
    def handshake(self) -> tuple:
        """What the server's handshake does; match-cn and the certificate header are the
        paths' own, so Ingresses that differ only there share a host."""
        return (self.ca, self.crl, self.verify, self.depth, self.error_page)

    @property
    def ca_file(self) -> str:
        assert self.ca is not None
        return content_file(self.ca, "crt")

    @property
    def crl_file(self) -> str:
        assert self.crl is not None
        return content_file(self.crl, "crl")


def verify_mode(value: object, what: str) -> str:
    text = grammar.string(value, what)
    if text not in VERIFY_MODES:
        raise Invalid(f"{what} {grammar.show(text)} must be one of {', '.join(VERIFY_MODES)}")
    return text


def depth(value: object, what: str) -> int:
    text = grammar.string(value, what)
    if not text.isdigit() or not 1 <= int(text) <= DEPTH_MAX:
        raise Invalid(f"{what} {grammar.show(text)} must be a whole number, 1 to {DEPTH_MAX}")
    return int(text)


def match_cn(value: object, what: str) -> str:
    text = grammar.string(value, what)
    if len(text) > CN_MAX or not CN_PATTERN.fullmatch(text):
        raise Invalid(
            f"{what} {grammar.show(text)} is not a CN= regular expression of letters, digits "
            f"and regex syntax, at most {CN_MAX} characters"
        )
    try:
        re.compile(text)
    except re.error as error:
        raise Invalid(f"{what} {grammar.show(text)} is not a regular expression: {error}") from None
    return text


def parse(read: Reader, config: Config) -> dict:
    secret = read.get(SECRET, secret_reference)
    if not read.has(SECRET):
        for key in OPTIONS:
            if key == PASS and read.has(PASS) and read.values[PASS].lower() in ("false", "0", "f"):
                read.ignore(PASS, "off, as without it")
            elif read.has(key):
                read.refuse(
                    key,
                    f"annotation {read.prefix + key} {grammar.show(read.values[key])} is "
                    f"refused: it needs {read.prefix + SECRET}, and serving the Ingress "
                    "without client certificates would protect it less than its author asked",
                )
        return {"client_certificates": None}
    policy = ClientCertificates(
        secret or (None, ""),
        read.get(VERIFY, verify_mode) or "on",
        read.get(DEPTH, depth) or 1,
        read.get(ERROR_PAGE, grammar.redirect_url),
        bool(read.get(PASS, grammar.go_boolean)),
        read.get(MATCH_CN, match_cn),
    )
    return {"client_certificates": policy if secret is not None else None}


def resolve(
    policy: ClientCertificates, secret: dict | None
) -> tuple[ClientCertificates, str | None]:
    """The policy with its checked CA (and CRL), or without (503) and the reason."""
    name = policy.secret[1]
    try:
        if secret is None:
            raise Invalid(f"auth-tls-secret {name}: the Secret does not exist")
        data = secret.get("data")
        if not isinstance(data, dict):
            raise Invalid(f"auth-tls-secret {name}: the Secret lacks ca.crt")
        pem = ca_certificates(data, f"auth-tls-secret {name}")
        crl = None
        if "ca.crl" in data:
            crl = grammar.base64_data(data["ca.crl"], f"auth-tls-secret {name} ca.crl")
            try:
                x509.load_pem_x509_crl(crl)
            except ValueError:
                raise Invalid(f"auth-tls-secret {name}: ca.crl is not a PEM CRL") from None
    except Invalid as error:
        return replace(policy, ca=None, crl=None), str(error)
    return replace(policy, ca=pem, crl=crl), None


def ca_certificates(data: dict, what: str) -> bytes:
    """The certificates of a Secret's `ca.crt`, checked and re-serialised as PEM (so that no
    text around them reaches a file nginx reads); `what` names the Secret in reasons."""
    if "ca.crt" not in data:
        raise Invalid(f"{what}: the Secret lacks ca.crt")
    ca = grammar.base64_data(data["ca.crt"], f"{what} ca.crt")
    try:
        certificates = x509.load_pem_x509_certificates(ca)
    except ValueError:
        raise Invalid(f"{what}: ca.crt holds no PEM certificate") from None
    return b"".join(certificate.public_bytes(Encoding.PEM) for certificate in certificates)


def files(servers) -> dict[str, bytes]:
    """The CA (and CRL) file of every server that verifies client certificates."""
    found: dict[str, bytes] = {}
    for server in servers:
        policy = server.client_certificates
        if policy is not None:
            found[policy.ca_file] = policy.ca
            if policy.crl is not None:
                found[policy.crl_file] = policy.crl
    return found


render_match_cn = grammar.second_lock(CN_PATTERN, "a CN= regular expression")
