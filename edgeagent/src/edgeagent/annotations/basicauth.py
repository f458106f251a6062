"""Basic authentication (ingress-nginx: annotations/auth, nginx.tmpl's `auth_basic`).

`auth-type: basic` asks every request of the Ingress's paths for a user and password,
checked against the htpasswd lines of the Secret `auth-secret` (nginx `auth_basic` and
`auth_basic_user_file`): a request without them, or with wrong ones, gets 401 with
`WWW-Authenticate: Basic realm="<auth-realm>"`.

- `auth-secret-type`: `auth-file` (the default: the Secret's key `auth` holds htpasswd
  lines) or `auth-map` (each key a user, its value the password hash).
- `auth-secret`: `NAME`, or `NAMESPACE/NAME` as ingress-nginx allows, but only with the
  Ingress's own namespace: a Secret of another namespace would let one tenant's Ingress
  read another's (docs/security.md).
- `auth-type: digest`: refused, Debian's nginx has no digest module.

The Secret is read when the configuration is built (`resolve`): one missing or malformed
makes the Ingress's paths answer 503, as ingress-nginx's denied locations do, and is
reported on the Ingress; nothing else is harmed. The lines are checked one by one: a user
without ':' or white space, and a hash in a scheme Debian's nginx checks (its own
{PLAIN}, {SHA}, {SSHA}, $apr1$, and libxcrypt's $1$, $2a$/$2b$/$2y$, $5$, $6$, $y$);
anything else (a DES crypt, a typo) refuses the Secret with its line number, never its
content.
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, replace

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

TYPE, SECRET, SECRET_TYPE, REALM = "auth-type", "auth-secret", "auth-secret-type", "auth-realm"
KEYS = (TYPE, SECRET, SECRET_TYPE, REALM)
AUTH_FILE, AUTH_MAP = "auth-file", "auth-map"
FILE_KEY = "auth"
REALM_MAX = 256
# Debian's libxcrypt and nginx's own ngx_crypt (src/core/ngx_crypt.c) check these.
HASH = re.compile(
    r"\{PLAIN\}[\x21-\x7e]*"
    r"|\{SHA\}[A-Za-z0-9+/]{27}="
    r"|\{SSHA\}[A-Za-z0-9+/]+={0,2}"
    r"|\$apr1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}"
    r"|\$1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}"
    r"|\$2[aby]\$[0-9]{2}\$[./0-9A-Za-z]{53}"
    r"|\$[56]\$(rounds=[0-9]{1,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{43,86}"
    r"|\$y\$[./0-9A-Za-z]+\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{43}"
)
USER = re.compile(r"[\x21-\x39\x3b-\x7e]{1,255}")  # printable, no ':' nor white space
SCHEMES = "{PLAIN}, {SHA}, {SSHA}, $apr1$, $1$, $2a$/$2b$/$2y$ (bcrypt), $5$, $6$ or $y$"


def content_file(content: bytes, suffix: str) -> str:
    """The file of a Secret's content in a generation, named by that content (a change is
    a new file): basic auth's htpasswd, client and backend certificates."""
    return f"auth/{hashlib.sha256(content).hexdigest()[:16]}.{suffix}"


@dataclass(frozen=True)
class BasicAuth:
    secret: tuple[str | None, str]
    """(namespace as written or None, name) of the Secret `auth-secret` names."""
    secret_type: str
    realm: str
    htpasswd: bytes | None = None
    """The checked htpasswd lines once resolved; None: the Secret is unusable (503)."""

    def __repr__(self) -> str:
        # Password hashes never reach a log line, not even through a repr.
        return f"BasicAuth(secret={self.secret!r}, realm={self.realm!r}, htpasswd=<redacted>)"

    @property
    def file(self) -> str:
        """Its file in a generation, named by its content: a change is a new file."""
        assert self.htpasswd is not None
        return content_file(self.htpasswd, "htpasswd")


def auth_type(value: object, what: str) -> str:
    text = grammar.string(value, what)
    if text == "digest":
        raise Invalid(
            f"{what} {grammar.show(text)} is not supported: Debian's nginx has no digest "
            "authentication module",
            "unsupported",
        )
    if text != "basic":
        raise Invalid(f"{what} {grammar.show(text)} must be basic")
    return text


def secret_reference(value: object, what: str) -> tuple[str | None, str]:
    text = grammar.string(value, what)
    namespace, _, name = text.rpartition("/")
    return (
        grammar.dns1123_label(namespace, f"{what} namespace") if namespace else None,
        grammar.dns1123_subdomain(name, what),
    )


def secret_type(value: object, what: str) -> str:
    text = grammar.string(value, what)
    if text not in (AUTH_FILE, AUTH_MAP):
        raise Invalid(f"{what} {grammar.show(text)} must be {AUTH_FILE} or {AUTH_MAP}")
    return text


def realm(value: object, what: str) -> str:
    text = grammar.string(value, what)
    return grammar.header_value(text, what) if text else text


def parse(read: Reader, config: Config) -> dict:
    kind = read.get(TYPE, auth_type)
    secret = read.get(SECRET, secret_reference)
    written_type = read.get(SECRET_TYPE, secret_type)
    written_realm = read.get(REALM, realm)
    if not read.has(TYPE) or kind is None or secret is None:
        _refuse_alone(read)
        return {"basic_auth": None}
    return {"basic_auth": BasicAuth(secret, written_type or AUTH_FILE, written_realm or "")}


def _refuse_alone(read: Reader) -> None:
    """auth-type basic without a Secret (ingress-nginx answered 503), or a Secret without
    auth-type (ingress-nginx served it unprotected, never what its author asked): refused,
    so that `edgeagent check` names the missing key."""
    for key, needs in ((TYPE, SECRET), (SECRET, TYPE), (SECRET_TYPE, TYPE), (REALM, TYPE)):
        if read.has(key) and not read.has(needs) and key not in _refused(read):
            value = read.values[key]
            reason = (
                f"annotation {read.prefix + key} {grammar.show(value)} is refused: it needs "
                f"{read.prefix + needs}, and serving the Ingress without authentication "
                "would protect it less than its author asked"
            )
            read.refuse(key, reason)


def _refused(read: Reader) -> set[str]:
    return {key for key, finding in read.findings.items() if finding.status == "refused"}


def check_namespace(
    auth: BasicAuth | None, namespace: str, config: Config, key: str = SECRET
) -> None:
    """Raises `Invalid` for a Secret of another namespace than the Ingress's (`key` names it)."""
    if auth is not None and auth.secret[0] not in (None, namespace):
        written = grammar.show("/".join(auth.secret))
        raise Invalid(
            f"annotation {config.annotations_prefix}/{key} {written} is refused: only the "
            f"Ingress's own namespace ({namespace}) is read, so that no tenant reads "
            "another's Secrets",
            "unsupported",
        )


def resolve(auth: BasicAuth, secret: dict | None) -> tuple[BasicAuth, str | None]:
    """The auth with its checked htpasswd lines, or without (503) and the reason."""
    try:
        return replace(auth, htpasswd=htpasswd_of(auth, secret)), None
    except Invalid as error:
        return replace(auth, htpasswd=None), str(error)


def htpasswd_of(auth: BasicAuth, secret: dict | None) -> bytes:
    name = auth.secret[1]
    if secret is None:
        raise Invalid(f"auth-secret {name}: the Secret does not exist")
    data = secret.get("data")
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise Invalid(f"auth-secret {name}: the Secret has no data")
    if auth.secret_type == AUTH_FILE:
        if FILE_KEY not in data:
            raise Invalid(f"auth-secret {name}: the Secret lacks the key {FILE_KEY}")
        text = _text(data[FILE_KEY], f"auth-secret {name} key {FILE_KEY}")
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    else:
        lines = [
            f"{user}:{_text(value, f'auth-secret {name} key {grammar.show(user)}').strip()}"
            for user, value in sorted(data.items())
        ]
    if not lines:
        raise Invalid(f"auth-secret {name}: the Secret lists no user")
    for number, line in enumerate(lines, 1):
        user, colon, hashed = line.strip().partition(":")
        if not colon or not USER.fullmatch(user):
            raise Invalid(f"auth-secret {name}: entry {number} is not user:hash")
        if not HASH.fullmatch(hashed):
            raise Invalid(
                f"auth-secret {name}: entry {number} (user {grammar.show(user)}) has a hash "
                f"nginx cannot check; use {SCHEMES}"
            )
    return "".join(line.strip() + "\n" for line in lines).encode()


def _text(value: object, what: str) -> str:
    try:
        return base64.b64decode(grammar.string(value, what), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise Invalid(f"{what} is not base64 of ASCII text") from None


def files(servers) -> dict[str, bytes]:
    """The user file of every usable basic auth among the servers' locations, by path."""
    return {
        auth.file: auth.htpasswd
        for server in servers
        for location in server.locations
        if (auth := location.settings.basic_auth) is not None and auth.htpasswd is not None
    }


_checked_realm = grammar.second_lock(grammar.HEADER_VALUE, "a realm")


def render_realm(value: str) -> str:
    """The realm quoted for `auth_basic` (empty: `""`, still a realm, not `off`)."""
    return '"' + (_checked_realm(value) if value else "") + '"'
