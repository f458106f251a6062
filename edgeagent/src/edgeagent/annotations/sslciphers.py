"""The TLS ciphers of a host (ingress-nginx: annotations/sslcipher, nginx.tmpl's server
`ssl_ciphers` and `ssl_prefer_server_ciphers`).

- `ssl-ciphers`: an OpenSSL cipher list (`HIGH:!aNULL`, `ECDHE-RSA-AES128-GCM-SHA256`),
  the host's TLS 1.2 ciphers; TLS 1.3's suites are OpenSSL's own, as in ingress-nginx.
- `ssl-prefer-server-ciphers`: true or false, the server's order (`on`) or the client's.

Both are settings of the host's TLS server, not of a path: nginx picks the server by SNI
before any request. As ingress-nginx, every Ingress of the host gets them; two Ingresses on
one host asking for different ones are a conflict, the newer one's paths answering 503
(model.py), as client certificates (clientcert.py) are.

A list goes through the grammar (OpenSSL's syntax, nothing nginx would read as syntax),
then through the system OpenSSL (tls_check.py): each cipher or alias it adds must select a
cipher on its own, so that a typo (`ECDHE-RSA-AES128-GCM-SHA265`) or what this OpenSSL
no longer has (`RC4`, `3DES`) is refused with its name rather than silently dropped, and
the whole list must select one, or nginx would refuse every candidate. What a list takes
out (`!MD5`, `-RC4`) or only moves (`+MEDIUM`) is not checked: taking out or moving what is
not there changes nothing.
"""

import re
from dataclasses import dataclass

from edgeagent import grammar, tls_check
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

CIPHERS, PREFER = "ssl-ciphers", "ssl-prefer-server-ciphers"
KEYS = (CIPHERS, PREFER)
# OpenSSL's cipher string: ':'-separated elements, each an optional operator (! - +), a
# name or names joined by '+', and the @STRENGTH and @SECLEVEL=n commands.
NAMES = r"[A-Za-z0-9][A-Za-z0-9_-]*(\+[A-Za-z0-9][A-Za-z0-9_-]*)*"
COMMANDS = r"(@STRENGTH|@SECLEVEL=[0-5])"
ELEMENT = re.compile(rf"[!+-]?{NAMES}{COMMANDS}*|{COMMANDS}+")
CIPHER_LIST = re.compile(rf"({ELEMENT.pattern})(:({ELEMENT.pattern}))*")
CIPHER_LIST_MAX = 1024


@dataclass(frozen=True)
class HostCiphers:
    """What the host's TLS server offers; None: the edge's default (the main config's)."""

    ciphers: str | None = None
    prefer_server_ciphers: bool | None = None
    held: bool = True
    """False once another Ingress's differing choice holds the host: its paths answer 503."""

    @property
    def handshake(self) -> tuple:
        return (self.ciphers, self.prefer_server_ciphers)


def cipher_list(value: object, what: str) -> str:
    """An OpenSSL cipher list whose every added cipher or alias this OpenSSL has."""
    text = grammar.string(value, what).strip()
    if not text:
        raise Invalid(f"{what} is empty: it must name at least one cipher")
    if len(text) > CIPHER_LIST_MAX or not CIPHER_LIST.fullmatch(text):
        raise Invalid(
            f"{what} {grammar.show(text)} is not an OpenSSL cipher list (names of letters, "
            "digits, '-' and '_', joined by ':' or '+', each may start with '!', '-' or "
            f"'+'; @STRENGTH, @SECLEVEL=0-5), at most {CIPHER_LIST_MAX} characters"
        )
    for element in text.split(":"):
        names = re.sub(COMMANDS, "", element)
        if not names or names.startswith(("!", "-", "+")):
            continue
        if tls_check.unselectable(names) is not None:
            raise Invalid(
                f"{what} {grammar.show(text)}: {grammar.show(names)} names no cipher this "
                "OpenSSL has (unknown, or removed from it)"
            )
    refused = tls_check.unselectable(text)
    if refused is not None:
        raise Invalid(f"{what} {grammar.show(text)}: {refused}")
    return text


def parse(read: Reader, config: Config) -> dict:
    ciphers = read.get(CIPHERS, cipher_list)
    prefer = read.get(PREFER, grammar.go_boolean)
    if ciphers is None and prefer is None:
        return {"host_ciphers": None}
    return {"host_ciphers": HostCiphers(ciphers, prefer)}


render_ciphers = grammar.second_lock(CIPHER_LIST, "an OpenSSL cipher list")
