"""The Kubernetes grammar of every value that can reach nginx configuration.

Each function takes a value exactly as it came from the API (or a manifest), checks its
JSON type and its grammar, and returns the normalised value or raises `Invalid` with a
reason a user can act on. The grammars are the ones the API server enforces
(k8s.io/apimachinery validation), narrowed where nginx needs it: a value that passes here
is a plain nginx token (no whitespace, quotes, `;`, braces, `#`, `$` or backslash), so
the templates never have to guess how to quote it. `render` checks that property again
before it writes anything.

TLS material is parsed with `cryptography` and re-serialised (`tls_pair`), so the bytes
nginx reads are canonical PEM produced here, never the bytes of the Secret.
"""

import base64
import binascii
import functools
import ipaddress
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from edgeagent.tls_check import unloadable

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# A topology zone, as label values are written (EndpointSlice endpoints' `zone`).
ZONE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
MAX_WEIGHT = 100
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
IANA_SERVICE_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
# RFC 3986 unreserved characters plus the sub-delimiters that are inert in nginx tokens.
# Left out on purpose: `%` (nginx matches the decoded URI, so an encoded rule never
# matches), `;` `{` `}` `'` `"` `$` `#` `\` whitespace (nginx syntax), `?` (query).
PATH = re.compile(r"/[A-Za-z0-9\-._~/!*+,=:@&]*")
PATH_MAX_LENGTH = 2048
# A regular expression path (use-regex, rewrite-target), written inside double quotes:
# the path characters plus the regex syntax ingress-nginx accepted, and backslash only
# before a character nginx's quoted-string reader leaves alone (never `\\`, `\"`, `\t`,
# `\n`, `\r`, which it would rewrite). No quote, `;`, `#`, `%` or whitespace.
REGEX_PATH = re.compile(r"/([A-Za-z0-9\-._~/!*+,=:@&()|?^$\[\]{}]|\\[-./dDwWsS()\[\]{}*+?|^$])*")
# rewrite-target: a path whose `$1`-`$9` name the location's captures; no other `$` (nginx
# would read it as a variable) and never a scheme (nginx would redirect).
REGEX_REPEAT_MAX = 65535
REGEX_DEPTH_MAX = 200
# Each build asks again for every plain path of a host with regex paths.
REGEX_CACHE_SIZE = 16384
# permanent-redirect, temporal-redirect: ingress-nginx's URL characters.
REDIRECT_URL = re.compile(
    r"(https?://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?)?"
    r"(/[A-Za-z0-9\-._~/:,=&]*)?(\?[A-Za-z0-9\-._~/:,=&?]*)?"
)
REWRITE_TARGET = re.compile(r"/([A-Za-z0-9\-._~/!*+,=:@&]|\$[1-9])*")
PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
# What a filesystem path given by the operator (Layout) may contain.
FILE_PATH = re.compile(r"/[A-Za-z0-9\-._~/+@]*")
LISTEN = re.compile(r"(?P<addr>\*|\[[0-9A-Fa-f:.]+\]|[0-9.]+):(?P<port>[0-9]{1,5})")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")
SIZE = re.compile(r"(0|[1-9][0-9]{0,8})([kKmMgG]?)")
SECONDS = re.compile(r"[1-9][0-9]{0,6}")
# nginx waits for its next timer with epoll_wait's int milliseconds: 2^31 ms, 24.8 days.
SECONDS_MAX = 2_147_483
# proxy-buffer-size and -number: nginx needs its busy buffers (twice the buffer size)
# below all buffers but one, so at least 4; the caps bound the memory of one request.
BUFFER_SIZE = re.compile(r"[1-9][0-9]{0,6}[kKmM]?")
BUFFER_SIZE_MAX = 1024 * 1024
BUFFERS_NUMBER = re.compile(r"[1-9][0-9]{0,2}")
BUFFERS_NUMBER_MIN, BUFFERS_NUMBER_MAX = 4, 64
HSTS_MAX_AGE = re.compile(r"0|[1-9][0-9]{0,9}")
HSTS_MAX_AGE_MAX = 2**31 - 1
# Go's strconv.ParseBool, which ingress-nginx reads boolean annotations with.
GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
# One item of a source range list, before ipaddress checks it: an address with an
# optional prefix length (no netmask form, no IPv6 zone), as Go's net.ParseCIDR reads it.
SOURCE_RANGE = re.compile(r"[0-9.]+(/[0-9]{1,2})?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/[0-9]{1,3})?")
SOURCE_RANGES_MAX = 1000
TLS_PAIR_CACHE_SIZE = 4096
SERVER_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


class Invalid(ValueError):
    """A value that breaks the grammar; the message says which and why.

    `code` is a short, fixed category for metrics: "invalid" (breaks the grammar) or
    "unsupported" (well-formed, but asks for something edgeagent does not do).
    """

    def __init__(self, reason: str, code: str = "invalid") -> None:
        super().__init__(reason)
        self.code = code


def show(text: str) -> str:
    """A value quoted for a message: escaped (one line, whatever it holds) and bounded."""
    return repr(text) if len(text) <= 80 else repr(text[:80]) + "..."


@dataclass(frozen=True)
class CertPair:
    """A certificate chain and its private key, canonical PEM, known to match."""

    certificate_pem: bytes
    key_pem: bytes

    def __repr__(self) -> str:
        # The key never reaches a log line, not even through a repr in a traceback.
        return f"CertPair(certificate_pem=<{len(self.certificate_pem)} bytes>, key=<redacted>)"


def string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{what} must be a string, not {type(value).__name__}")
    return value


def _pattern(value: object, what: str, pattern: re.Pattern, max_length: int, grammar: str) -> str:
    text = string(value, what)
    if len(text) > max_length:
        raise Invalid(f"{what} is longer than {max_length} characters")
    if not pattern.fullmatch(text):
        raise Invalid(f"{what} {show(text)} is not a valid {grammar}")
    return text


def second_lock(pattern: re.Pattern, what: str) -> Callable[[object], str]:
    """A render filter: the value as it is when `pattern` matches all of it, else a loud
    refusal. The second lock behind the parsers, in case a value reached the template
    some other way."""

    def checked(value: object) -> str:
        text = str(value)
        if not pattern.fullmatch(text):
            raise ValueError(f"refusing to render {show(text)}: not {what}")
        return text

    return checked


def _token(pattern: re.Pattern, max_length: int, grammar: str) -> Callable[[object, str], str]:
    """A check of `(value, what)` for a string that `pattern` matches whole."""

    def check(value: object, what: str) -> str:
        return _pattern(value, what, pattern, max_length, grammar)

    return check


# Namespaces: lower-case alphanumerics and '-', at most 63.
dns1123_label = _token(DNS1123_LABEL, 63, "DNS-1123 label")
# Object names (Ingress, Secret, IngressClass, EndpointSlice): dotted labels, <= 253.
dns1123_subdomain = _token(DNS1123_SUBDOMAIN, 253, "DNS-1123 subdomain")
# Service names: a DNS-1123 label that starts with a letter.
dns1035_label = _token(DNS1035_LABEL, 63, "DNS-1035 label")


def zone_weights(value: object, what: str) -> dict[str, int]:
    """`zone=weight,zone=weight`: topology zones (label values) and weights 1-100."""
    weights = {}
    for item in string(value, what).split(","):
        zone, equals, number = item.strip().partition("=")
        if not equals or not ZONE.fullmatch(zone) or not re.fullmatch(r"[0-9]{1,3}", number):
            raise Invalid(f"{what}: {show(item)} is not zone=weight")
        if not 1 <= int(number) <= MAX_WEIGHT or zone in weights:
            raise Invalid(f"{what}: weight of {zone} must be 1-{MAX_WEIGHT}, given once")
        weights[zone] = int(number)
    return weights


def port_name(value: object, what: str) -> str:
    """IANA service name: 1-15 of [a-z0-9-], at least one letter, no '--', no edge '-'."""
    text = _pattern(value, what, IANA_SERVICE_NAME, 15, "port name (IANA service name)")
    if "--" in text or not any(c.isalpha() for c in text):
        raise Invalid(f"{what} {show(text)} is not a valid port name (IANA service name)")
    return text


def port_number(value: object, what: str) -> int:
    # bool is an int in Python; YAML `true` must not become port 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"{what} must be an integer, not {type(value).__name__}")
    if not 1 <= value <= 65535:
        raise Invalid(f"{what} {value} is outside 1-65535")
    return value


def host(value: object, what: str = "host") -> str:
    """An Ingress host: a DNS-1123 subdomain or `*.` + one, never an IP address.

    Labels are limited to 63 characters as DNS requires.
    """
    text = string(value, what)
    name = text[2:] if text.startswith("*.") else text
    _pattern(name, what, DNS1123_SUBDOMAIN, 253, "DNS name")
    if any(len(label) > 63 for label in name.split(".")):
        raise Invalid(f"{what} {show(text)} has a label longer than 63 characters")
    # A DNS name that is also an address can only be IPv4 (':' is no DNS character).
    if IPV4.fullmatch(name):
        raise Invalid(f"{what} {show(text)} is an IP address; Ingress hosts must be DNS names")
    return text


def path(value: object, path_type: str, what: str = "path") -> str:
    """An HTTP path rule, checked as the API server checks Exact and Prefix paths.

    ImplementationSpecific is served as Prefix, so it gets the same checks; an empty
    ImplementationSpecific path means "/".
    """
    if value is None and path_type == "ImplementationSpecific":
        return "/"
    text = string(value, what)
    if text == "" and path_type == "ImplementationSpecific":
        return "/"
    if len(text) > PATH_MAX_LENGTH:
        raise Invalid(f"{what} is longer than {PATH_MAX_LENGTH} characters")
    if not PATH.fullmatch(text):
        raise Invalid(
            f"{what} {show(text)} must start with '/' and contain only letters, digits and "
            "-._~/!*+,=:@& (no '%', quotes, ';', braces, '$', '#', '?', '\\' or spaces)"
        )
    if "//" in text:
        raise Invalid(f"{what} {show(text)} must not contain '//'")
    segments = text.split("/")
    if "." in segments or ".." in segments:
        raise Invalid(f"{what} {show(text)} must not contain '.' or '..' segments")
    return text


def app_root(value: object, what: str) -> str:
    """A path other than `/` (which would redirect to itself), of the path grammar."""
    text = path(value, "Exact", what)
    if text == "/":
        raise Invalid(f"{what} '/' would redirect '/' to itself")
    return text


def regex_path(value: object, what: str = "path") -> str:
    """A path of an Ingress whose paths are regular expressions (PCRE, matched from the
    start of the path, case-insensitive, as ingress-nginx does)."""
    text = string(value, what)
    if len(text) > PATH_MAX_LENGTH:
        raise Invalid(f"{what} is longer than {PATH_MAX_LENGTH} characters")
    if not REGEX_PATH.fullmatch(text):
        raise Invalid(
            f"{what} {show(text)} must start with '/' and hold only letters, digits, "
            "-._~/!*+,=:@& and the regex syntax ()|?^$[]{}*+ (backslash only before one "
            "of -./dDwWsS()[]{}*+?|^$)"
        )
    if not is_regex(text):
        raise Invalid(f"{what} {show(text)} is not a regular expression nginx can use")
    return text


@functools.lru_cache(maxsize=REGEX_CACHE_SIZE)
def is_regex(text: str) -> bool:
    """Whether `^text` is a regular expression that nginx's PCRE compiles: Python's `re`
    compiles it, and none of what PCRE refuses and Python takes is in it (nested `[` in
    a class, as in POSIX classes; `{n}` above 65535; parentheses nested deeper than
    PCRE's 250). Named groups, lookarounds, inline flags and back references are left
    out: they need `(?` or a digit after a backslash."""
    if "(?" in text.replace("(?:", ""):
        return False
    repeats = re.findall(r"\{([0-9]+)(?:,([0-9]*))?\}", text)
    if any(int(n) > REGEX_REPEAT_MAX for pair in repeats for n in pair if n):
        return False
    depth = class_start = 0
    in_class = escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            if char == "[":
                return False
            if char == "]" and i > class_start:  # a "]" right after "[" or "[^" is literal
                in_class = False
        elif char == "[":
            in_class = True
            class_start = i + 1 + (text[i + 1 : i + 2] == "^")
        elif char == "(":
            depth += 1
            if depth > REGEX_DEPTH_MAX:
                return False
        elif char == ")":
            depth -= 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            re.compile("^" + text)
    except (re.error, RecursionError, OverflowError):
        return False
    return True


def rewrite_target(value: object, what: str) -> str:
    text = string(value, what)
    if len(text) > PATH_MAX_LENGTH:
        raise Invalid(f"{what} is longer than {PATH_MAX_LENGTH} characters")
    if not REWRITE_TARGET.fullmatch(text):
        raise Invalid(
            f"{what} {show(text)} must start with '/' and hold only letters, digits, "
            "-._~/!*+,=:@& and the captures $1 to $9"
        )
    return text


def path_type(value: object, what: str = "pathType") -> str:
    text = string(value, what)
    if text not in PATH_TYPES:
        raise Invalid(f"{what} {show(text)} is not one of {', '.join(PATH_TYPES)}")
    return text


def ip_address(value: object, what: str, family: str) -> str:
    """An endpoint address of the slice's address family, in canonical form."""
    text = string(value, what)
    if family == "IPv4" and IPV4.fullmatch(text):
        return text  # already canonical; the regex is 5x faster than ipaddress at 50k
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise Invalid(f"{what} {show(text)} is not an IP address") from None
    expected = {"IPv4": 4, "IPv6": 6}[family]
    if address.version != expected:
        raise Invalid(f"{what} {show(text)} is not an {family} address")
    return str(address)


def boolean(value: object, what: str) -> bool:
    text = string(value, what)
    if text not in ("true", "false"):
        raise Invalid(f"{what} {show(text)} must be 'true' or 'false'")
    return text == "true"


def go_boolean(value: object, what: str) -> bool:
    """A boolean annotation as ingress-nginx reads it: "true", "false", "1", "0", ..."""
    text = string(value, what)
    if text not in GO_TRUE + GO_FALSE:
        raise Invalid(f"{what} {show(text)} must be 'true' or 'false'")
    return text in GO_TRUE


def seconds(value: object, what: str) -> int:
    """A timeout in whole seconds, written as digits only (as ingress-nginx does)."""
    text = string(value, what)
    if not SECONDS.fullmatch(text) or int(text) > SECONDS_MAX:
        raise Invalid(
            f"{what} {show(text)} must be a whole number of seconds from 1 to {SECONDS_MAX}"
        )
    return int(text)


def hsts_max_age(value: object, what: str) -> int:
    text = string(value, what)
    if not HSTS_MAX_AGE.fullmatch(text) or int(text) > HSTS_MAX_AGE_MAX:
        raise Invalid(f"{what} {show(text)} must be a whole number of seconds")
    return int(text)


# nginx's allow, deny and geo take every address but this one (ngx_inet_addr's INADDR_NONE).
LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def source_ranges(value: object, what: str) -> tuple[str, ...]:
    """Comma-separated CIDRs or addresses, IPv4 or IPv6, blanks around items allowed:
    canonical (host bits cleared, as ingress-nginx does), sorted, without duplicates."""
    text = string(value, what)
    items = text.split(",")
    if len(items) > SOURCE_RANGES_MAX:
        raise Invalid(f"{what} lists more than {SOURCE_RANGES_MAX} networks")
    ranges = set()
    for item in items:
        item = item.strip(" \t\r\n")
        if not SOURCE_RANGE.fullmatch(item):
            raise Invalid(f"{what}: {show(item)} is not an IP address or CIDR")
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise Invalid(f"{what}: {show(item)} is not an IP address or CIDR") from None
        if network.network_address == LIMITED_BROADCAST:
            raise Invalid(
                f"{what}: {show(item)} is the limited broadcast address, which no client has"
                " and nginx refuses (its address parser returns it as its error value)"
            )
        single = network.prefixlen == network.max_prefixlen and "/" not in item
        ranges.add(str(network.network_address) if single else str(network))
    return tuple(sorted(ranges))


def size(value: object, what: str) -> str:
    """A body size: digits with an optional k/m/g suffix; '0' means unlimited."""
    text = string(value, what)
    if not SIZE.fullmatch(text):
        raise Invalid(f"{what} {show(text)} must be digits with an optional k, m or g suffix")
    return text.lower()


BACKEND_PROTOCOLS = ("HTTP", "HTTPS", "GRPC", "GRPCS")
BACKEND_PROTOCOLS_NOT_YET = ("AUTO_HTTP", "FCGI")


def backend_protocol(value: object, what: str) -> str:
    """ingress-nginx's protocols, any case, blanks trimmed; those edgeagent does not
    speak yet are `unsupported`."""
    raw = string(value, what)
    text = raw.strip().upper()
    if text in BACKEND_PROTOCOLS_NOT_YET:
        raise Invalid(
            f"{what} {show(raw)} is not supported yet (HTTP, HTTPS, GRPC and GRPCS are); "
            "the Ingress is not served rather than sent to its backend in another protocol",
            "unsupported",
        )
    if text not in BACKEND_PROTOCOLS:
        raise Invalid(
            f"{what} {show(raw)} must be one of "
            + ", ".join(BACKEND_PROTOCOLS + BACKEND_PROTOCOLS_NOT_YET)
        )
    return text


def redirect_url(value: object, what: str) -> str:
    """An http(s) URL or an absolute path, of the characters ingress-nginx allowed in
    redirect URLs (no `$`: nginx would read a variable; no `%`, `#`, quotes, blanks)."""
    text = string(value, what)
    if len(text) > PATH_MAX_LENGTH:
        raise Invalid(f"{what} is longer than {PATH_MAX_LENGTH} characters")
    if not text or not REDIRECT_URL.fullmatch(text):
        raise Invalid(
            f"{what} {show(text)} must be an http or https URL, or a path, of letters, "
            "digits and -._~/:,=&? (no '$', '%', '#', quotes or blanks)"
        )
    return text


def temporal_redirect_url(value: object, what: str) -> str:
    """As `redirect_url`, but absolute: ingress-nginx refused a temporal redirect to
    anything but an http or https URL."""
    text = redirect_url(value, what)
    if not text.startswith(("http://", "https://")):
        raise Invalid(f"{what} {show(text)} must be an http or https URL")
    return text


def http_status(value: object, what: str) -> int:
    text = string(value, what)
    if not re.fullmatch(r"[1-5][0-9]{2}", text):
        raise Invalid(f"{what} {show(text)} must be an HTTP status code")
    return int(text)


def on_off(value: object, what: str) -> str:
    """ "on" or "off", as ingress-nginx's option validator (blanks around trimmed)."""
    text = string(value, what).strip()
    if text not in ("on", "off"):
        raise Invalid(f"{what} {show(text)} must be 'on' or 'off'")
    return text


def http_version(value: object, what: str) -> str:
    text = string(value, what).strip()
    if text not in ("1.0", "1.1"):
        raise Invalid(f"{what} {show(text)} must be '1.0' or '1.1'")
    return text


def buffer_size(value: object, what: str) -> str:
    """An nginx size from 1 byte to 1m."""
    text = string(value, what)
    if not BUFFER_SIZE.fullmatch(text):
        raise Invalid(f"{what} {show(text)} must be digits with an optional k or m suffix")
    scale = {"k": 1024, "m": 1024 * 1024}.get(text[-1].lower(), 1)
    if int(text.rstrip("kKmM")) * scale > BUFFER_SIZE_MAX:
        raise Invalid(f"{what} {show(text)} must be at most 1m")
    return text.lower()


def buffers_number(value: object, what: str) -> int:
    text = string(value, what)
    if not BUFFERS_NUMBER.fullmatch(text) or not (
        BUFFERS_NUMBER_MIN <= int(text) <= BUFFERS_NUMBER_MAX
    ):
        raise Invalid(
            f"{what} {show(text)} must be a whole number from {BUFFERS_NUMBER_MIN} to "
            f"{BUFFERS_NUMBER_MAX}"
        )
    return int(text)


def listen(value: object, what: str) -> str:
    """An nginx listen address `ADDR:PORT`: IPv4, [IPv6] or `*`."""
    text = string(value, what)
    match = LISTEN.fullmatch(text)
    if not match:
        raise Invalid(f"{what} {show(text)} must be ADDR:PORT (IPv4, [IPv6] or *)")
    address = match["addr"]
    if address != "*":
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            raise Invalid(f"{what} {show(text)} does not hold an IP address") from None
    port_number(int(match["port"]), what)
    return text


# An absolute filesystem path the operator chose; plain characters only.
file_path = _token(FILE_PATH, 1024, "absolute path of plain characters")


def base64_data(value: object, what: str) -> bytes:
    text = string(value, what)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"{what} is not valid base64") from None


@functools.lru_cache(maxsize=TLS_PAIR_CACHE_SIZE)
def tls_pair(certificate_pem: bytes, key_pem: bytes) -> CertPair:
    """Parse, match and re-serialise a certificate chain and its unencrypted key, and
    load it with the system OpenSSL as nginx will (tls_check.py).

    Cached because parsing keys is the slowest step of a sync with many TLS hosts and
    the same Secret is seen again on every sync; the cache is bounded.
    """
    try:
        chain = x509.load_pem_x509_certificates(certificate_pem)
    except ValueError:
        raise Invalid("tls.crt holds no valid PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise Invalid("tls.key holds no usable unencrypted PEM private key") from None
    if not isinstance(key, SERVER_KEY_TYPES):
        raise Invalid(f"tls.key is a {type(key).__name__}, not an RSA, EC or EdDSA key")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.PEM
    if key.public_key().public_bytes(encoding, public) != chain[0].public_key().public_bytes(
        encoding, public
    ):
        raise Invalid("tls.key does not match the first certificate of tls.crt")
    pair = CertPair(
        certificate_pem=b"".join(cert.public_bytes(encoding) for cert in chain),
        key_pem=key.private_bytes(
            encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    refused = unloadable(pair.certificate_pem + pair.key_pem)
    if refused is not None:  # what nginx -t would say of it (tls_check.py)
        raise Invalid(refused)
    return pair


# A GatewayClass's spec.controllerName: a domain, then a path (the Gateway API's
# GatewayController, without the percent-escapes and sub-delimiters no controller uses).
CONTROLLER_NAME = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9/\-._~]+"
)


controller_name = _token(CONTROLLER_NAME, 253, "controller name (domain/path)")


# HTTPRoute matches, as nginx reads them: a header's value is `$http_<name>` (lower case,
# '-' as '_', so names with '_' are refused: nginx could not tell them apart), a query
# parameter's `$arg_<name>` (a variable name: no '-'), and the values compared are plain
# tokens, never quotes, '$' (a variable) or spaces.
HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
QUERY_NAME = re.compile(r"[A-Za-z0-9_]+")
MATCH_VALUE = re.compile(r"[A-Za-z0-9\-._~/!*+,=:@&]+")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


header_name = _token(HEADER_NAME, 256, "header name (letters, digits and '-')")
query_name = _token(QUERY_NAME, 256, "query parameter name (letters, digits, '_')")
match_value = _token(MATCH_VALUE, 1024, "value (letters, digits and -._~/!*+,=:@&)")
# A Gateway API RegularExpression header or query parameter value: the characters of
# MATCH_VALUE and the regex syntax, backslashes as in REGEX_PATH (nginx keeps them).
REGEX_VALUE = re.compile(r"([A-Za-z0-9\-._~/!*+,=:@&()|?^$\[\]{}]|\\[-./dDwWsS()\[\]{}*+?|^$])+")


def regex_value(value: object, what: str) -> str:
    """A regex that a whole header or query parameter value must match (PCRE, as
    Python's `re` reads it too: `is_regex`)."""
    text = string(value, what)
    if len(text) > 1024 or not REGEX_VALUE.fullmatch(text):
        raise Invalid(
            f"{what} {show(text)} must be 1 to 1024 letters, digits, -._~/!*+,=:@& and the "
            "regex syntax ()|?^$[]{}*+ (backslash only before one of -./dDwWsS()[]{}*+?|^$)"
        )
    if not is_regex(text):
        raise Invalid(f"{what} {show(text)} is not a regular expression nginx can use")
    return text


def http_method(value: object, what: str) -> str:
    text = string(value, what)
    if text not in HTTP_METHODS:
        raise Invalid(f"{what} {show(text)} is not one of {', '.join(HTTP_METHODS)}")
    return text


# Server names of annotations (server-alias, upstream-vhost): DNS names as Ingress hosts
# are; a server-alias list holds at most this many.
MAX_SERVER_ALIASES = 100


def server_aliases(value: object, what: str) -> tuple[str, ...]:
    """Comma-separated hosts (blanks around them allowed), without repeats, sorted, as
    ingress-nginx reads server-alias; in lower case, as nginx matches server names (and
    an Ingress's hosts are written)."""
    aliases = set()
    for n, item in enumerate(string(value, what).split(",")):
        if item.strip():
            aliases.add(host(item.strip().lower(), f"{what} item {n}"))
    if not aliases:
        raise Invalid(f"{what} names no host")
    if len(aliases) > MAX_SERVER_ALIASES:
        raise Invalid(f"{what} names more than {MAX_SERVER_ALIASES} hosts")
    return tuple(sorted(aliases))


def upstream_vhost(value: object, what: str) -> str:
    """The Host header sent to a backend: a DNS name, with an optional port."""
    text = string(value, what).strip()
    name, colon, port = text.partition(":")
    if name.startswith("*."):
        raise Invalid(f"{what} {show(text)} is a wildcard, not a host name")
    host(name, what)
    if colon:
        if not port.isdigit() or port.startswith("0"):
            raise Invalid(f"{what} {show(text)}: the port must be a number")
        port_number(int(port), what)
    return text


def forwarded_prefix(value: object, what: str) -> str:
    """The X-Forwarded-Prefix header: a path, which may use the captures $1-$9 of a
    regex location, as rewrite-target does."""
    return rewrite_target(value, what)


# A header value a Gateway API filter writes (RequestHeaderModifier and the like): printed
# inside double quotes in nginx's configuration, so never a quote, '\' (an escape) or '$'
# (a variable); no control character, which would split the header. 4096: the API's bound.
HEADER_VALUE = re.compile(r"[\x20\x21\x23\x25-\x5b\x5d-\x7e]+")


def header_value(value: object, what: str) -> str:
    return _pattern(
        value, what, HEADER_VALUE, 4096, "header value (printable ASCII but '\"', '\\' and '$')"
    )


# A Gateway API Duration (GEP-2257): up to four number-unit pairs, e.g. "1h30m", "500ms".
GATEWAY_DURATION = re.compile(r"([0-9]{1,5}(h|m|s|ms)){1,4}")
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_DURATION_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


def gateway_duration(value: object, what: str) -> int:
    """A Gateway API Duration in milliseconds (0: the timeout is off), at most what nginx
    takes for a timeout (SECONDS_MAX)."""
    text = _pattern(value, what, GATEWAY_DURATION, 32, "duration (e.g. 500ms, 10s, 1h30m)")
    total = sum(int(n) * _DURATION_MS[unit] for n, unit in _DURATION_PART.findall(text))
    if total > SECONDS_MAX * 1000:
        raise Invalid(f"{what} {show(text)} is longer than {SECONDS_MAX} seconds")
    return total


def bind_addresses(value: object, what: str) -> tuple[str, ...]:
    """IP addresses nginx listens on (`--gateway-address`), each in canonical form, so
    that it reaches a listen line as written and compares with the API's spelling."""
    found = []
    for each in value if isinstance(value, (list, tuple)) else [value]:
        text = string(each, what)
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise Invalid(f"{what} {show(text)} is not an IP address") from None
        if str(address) != text:
            raise Invalid(f"{what} {show(text)}: write it as {address}")
        found.append(text)
    return tuple(found)
