"""TLS towards the backend (ingress-nginx: annotations/proxyssl, nginx.tmpl's
`proxy_ssl_*`).

`proxy-ssl-secret` names a Secret (`NAME` or `NAMESPACE/NAME`, the Ingress's own namespace
only, as basicauth.py's) whose `ca.crt` holds the CAs the backend's certificate must chain
to, and whose `tls.crt` and `tls.key`, if there, are the client certificate nginx presents
to a backend that asks for one. As in ingress-nginx, the other keys apply only with it:

- `proxy-ssl-verify`: `on` verifies the backend's certificate against `ca.crt` (a failed
  verification answers 502), `off` (default) does not.
- `proxy-ssl-verify-depth`: the longest chain, 1 (default) to 100.
- `proxy-ssl-name`: the name the backend's certificate must hold, also sent by SNI; without
  it nginx uses its upstream's name, which no certificate holds (ingress-nginx's was
  `upstream_balancer`), so a verifying Ingress sets it.
- `proxy-ssl-server-name`: `on` sends that name by SNI, `off` (default) sends none.
- `proxy-ssl-ciphers`: an OpenSSL cipher list, checked as `ssl-ciphers` (sslciphers.py);
  `proxy-ssl-protocols`: some of nginx's SSLv2 SSLv3 TLSv1 TLSv1.1 TLSv1.2 TLSv1.3. Without
  them, nginx's defaults, which are ingress-nginx's (`DEFAULT`; TLSv1 to TLSv1.2).

With `backend-protocol` HTTPS they become `proxy_ssl_*`, with GRPCS `grpc_ssl_*` (where
ingress-nginx wrote `proxy_ssl_*`, which `grpc_pass` ignores: its GRPCS backends were never
verified). With HTTP or GRPC nginx speaks no TLS to the backend, and ingress-nginx's
directives did nothing: the keys are served without, each a warning, but `proxy-ssl-verify:
on`, which would leave the backend unverified, refuses the Ingress.

nginx keeps connections to an endpoint alive, and TLS sessions, per upstream, and hands
them to any location proxying there: a connection or session made under another
location's trust (or none) would skip this one's verification, or carry another client
certificate. So each policy has its own keep-alive pool (`pool`: the static mode's upstream
variant, the dynamic mode's upstream; model.py, edge.conf.j2), shared only by the
locations with the same policy.

A missing or malformed Secret makes the Ingress's paths answer 503 and is reported, as an
auth Secret is (model.py `_with_secrets`).
"""

import hashlib
from dataclasses import dataclass, replace

from edgeagent import grammar
from edgeagent.annotations import clientcert
from edgeagent.annotations.basicauth import content_file, secret_reference
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.annotations.sslciphers import cipher_list
from edgeagent.grammar import CertPair, Invalid

SECRET, VERIFY, DEPTH = "proxy-ssl-secret", "proxy-ssl-verify", "proxy-ssl-verify-depth"
NAME, SERVER_NAME = "proxy-ssl-name", "proxy-ssl-server-name"
CIPHERS, PROTOCOLS = "proxy-ssl-ciphers", "proxy-ssl-protocols"
OPTIONS = (VERIFY, DEPTH, NAME, SERVER_NAME, CIPHERS, PROTOCOLS)
KEYS = (SECRET, *OPTIONS)
# nginx's `proxy_ssl_protocols` values, in ingress-nginx's (sorted) order.
PROTOCOL_NAMES = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
PLAIN_PROTOCOLS = ("HTTP", "GRPC")


@dataclass(frozen=True)
class BackendTLS:
    secret: tuple[str | None, str]
    """(namespace as written or None, name) of the Secret `proxy-ssl-secret` names."""
    verify: str = "off"
    depth: int = 1
    name: str | None = None
    server_name: str = "off"
    ciphers: str | None = None
    protocols: str | None = None
    ca: bytes | None = None
    """The checked CA certificates (PEM) once resolved; None: the Secret is unusable (503)."""
    client: CertPair | None = None
    """The certificate presented to the backend (tls.crt and tls.key), if the Secret has one."""

    def __repr__(self) -> str:
        # The client key never reaches a log line, not even through a repr.
        return f"BackendTLS(secret={self.secret!r}, verify={self.verify!r}, key=<redacted>)"

    @property
    def pool(self) -> str:
        """Six hex digits naming the policy's own keep-alive pool (see the docstring)."""
        client = b"" if self.client is None else self.client.certificate_pem
        parts = (self.ca, client, self.verify, self.depth, self.name, self.server_name)
        text = repr((*parts, self.ciphers, self.protocols)).encode()
        return hashlib.blake2s(text, digest_size=3).hexdigest()

    @property
    def ca_file(self) -> str:
        assert self.ca is not None
        return content_file(self.ca, "crt")

    @property
    def client_file(self) -> str:
        """The certificate chain then the key, one private file named by its content."""
        assert self.client is not None
        pem = self.client.certificate_pem + self.client.key_pem
        return content_file(pem, "pem")


def protocols(value: object, what: str) -> str:
    """Blank-separated names of nginx's protocols, sorted and without repeats."""
    text = grammar.string(value, what)
    names = text.split()
    wrong = [name for name in names if name not in PROTOCOL_NAMES]
    if not names or wrong:
        raise Invalid(
            f"{what} {grammar.show(text)} must be some of {' '.join(PROTOCOL_NAMES)}, "
            "separated by blanks"
        )
    return " ".join(name for name in PROTOCOL_NAMES if name in names)


def server_name(value: object, what: str) -> str:
    """A DNS name (no wildcard: nginx sends and checks it as it is)."""
    text = grammar.host(value, what)
    if text.startswith("*."):
        raise Invalid(f"{what} {grammar.show(text)} must be a DNS name, not a wildcard")
    return text


def parse(read: Reader, config: Config) -> dict:
    if not read.has(SECRET):
        _options_alone(read)
        return {"backend_tls": None}
    secret = read.get(SECRET, secret_reference)
    policy = BackendTLS(
        secret or (None, ""),
        read.get(VERIFY, grammar.on_off) or "off",
        read.get(DEPTH, clientcert.depth) or 1,
        read.get(NAME, server_name),
        read.get(SERVER_NAME, grammar.on_off) or "off",
        read.get(CIPHERS, cipher_list),
        read.get(PROTOCOLS, protocols),
    )
    protocol = read.values.get("backend-protocol", "HTTP").strip().upper()
    if protocol in PLAIN_PROTOCOLS:
        _plain_backend(read, protocol)
        return {"backend_tls": None}
    return {"backend_tls": policy if secret is not None else None}


def _options_alone(read: Reader) -> None:
    """The options without a Secret, which ingress-nginx ignored."""
    _without_effect(
        read,
        OPTIONS,
        f"it needs {read.prefix + SECRET} (the CAs to verify with), and serving the Ingress "
        "unverified would protect it less than its author asked",
        f"it applies only with {read.prefix + SECRET}, as in ingress-nginx",
    )


def _plain_backend(read: Reader, protocol: str) -> None:
    """Keys that parsed, on a backend reached without TLS: nothing to apply them to."""
    _without_effect(
        read,
        KEYS,
        f"backend-protocol {protocol} reaches the backend without TLS, so there is no "
        "certificate to verify (use HTTPS or GRPCS)",
        f"backend-protocol {protocol} reaches the backend without TLS, so it has "
        "no effect, as in ingress-nginx",
    )


def _without_effect(read: Reader, keys: tuple, verify_refused: str, ignored: str) -> None:
    """Keys with nothing to apply to are ignored with a warning, but `verify: on` is
    refused: its author asked for a check that would not happen. Keys refused already
    keep their reason."""
    for key in keys:
        finding = read.findings.get(key)
        if not read.has(key) or (finding is not None and finding.status != "supported"):
            continue
        if key == VERIFY and read.values[key].strip() == "on":
            read.refuse(
                key,
                f"annotation {read.prefix + key} {grammar.show(read.values[key])} is refused: "
                + verify_refused,
            )
        else:
            read.ignore(key, ignored)


def resolve(policy: BackendTLS, secret: dict | None) -> tuple[BackendTLS, str | None]:
    """The policy with its checked CA and client pair, or without (503) and the reason."""
    name = policy.secret[1]
    try:
        if secret is None:
            raise Invalid(f"{SECRET} {name}: the Secret does not exist")
        data = secret.get("data")
        if not isinstance(data, dict):
            raise Invalid(f"{SECRET} {name}: the Secret has no data")
        ca = clientcert.ca_certificates(data, f"{SECRET} {name}")
        client = None
        if "tls.crt" in data or "tls.key" in data:
            if "tls.crt" not in data or "tls.key" not in data:
                raise Invalid(f"{SECRET} {name}: the Secret has one of tls.crt and tls.key")
            try:
                client = grammar.tls_pair(
                    grammar.base64_data(data["tls.crt"], "tls.crt"),
                    grammar.base64_data(data["tls.key"], "tls.key"),
                )
            except Invalid as error:
                raise Invalid(f"{SECRET} {name}: {error}") from None
    except Invalid as error:
        return replace(policy, ca=None, client=None), str(error)
    return replace(policy, ca=ca, client=client), None


def files(servers) -> dict[str, bytes]:
    """The CA file and client pair file of every usable backend TLS among the locations."""
    found: dict[str, bytes] = {}
    for server in servers:
        for location in server.locations:
            policy = location.settings.backend_tls
            if policy is not None and policy.ca is not None:
                found[policy.ca_file] = policy.ca
                if (client := policy.client) is not None:
                    found[policy.client_file] = client.certificate_pem + client.key_pem
    return found
