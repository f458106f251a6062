"""What ingress-nginx took from its flags and ConfigMap: the annotation prefix and the
defaults every Ingress gets unless an annotation says otherwise.

One place for each of them: the agent's flags (`edgeagent run`, `render`, `check`), the
role variables (roles/edgeagent) and docs/roles.md name these fields; `FLAGS` is what
the command lines are built from. The defaults are ingress-nginx's own
(docs/user-guide/nginx-configuration/configmap.md), so that an Ingress moved from it is
served the same way.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from edgeagent import grammar


@dataclass(frozen=True)
class Config:
    annotations_prefix: str = "nginx.ingress.kubernetes.io"
    """The prefix of the annotations read (ingress-nginx's `--annotations-prefix`)."""

    ssl_redirect: bool = True
    """Redirect plain HTTP to HTTPS (308) on hosts listed under `spec.tls`, as
    ingress-nginx does by default; `ssl-redirect: "false"` turns it off per Ingress.
    Locations under /.well-known/acme-challenge/ are never redirected (HTTP-01)."""

    hsts: bool = True
    """Send Strict-Transport-Security on HTTPS answers of hosts listed under `spec.tls`."""

    hsts_max_age: int = 31536000
    """Its max-age in seconds (one year, ingress-nginx's default)."""

    hsts_include_subdomains: bool = True
    """Add includeSubDomains (ingress-nginx's default)."""

    hsts_preload: bool = False
    """Add preload (off: preloading is a commitment a default must not make)."""

    proxy_connect_timeout: int = 5
    """Seconds to connect to a backend (ingress-nginx's default; nginx's own is 60)."""

    proxy_read_timeout: int = 60
    """Seconds between two reads from a backend."""

    proxy_send_timeout: int = 60
    """Seconds between two writes to a backend."""

    proxy_body_size: str = "1m"
    """Largest request body (nginx size; "0": unlimited)."""


def _boolean(value: Any) -> bool:
    """A flag's text ("true"/"false") or a YAML boolean."""
    if isinstance(value, bool):
        return value
    return grammar.boolean(value, "value")


def _seconds(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return grammar.seconds(value, "value")


def _hsts_max_age(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return grammar.hsts_max_age(value, "value")


def _size(value: Any) -> str:
    return grammar.size(str(value) if isinstance(value, int) else value, "value")


def _prefix(value: Any) -> str:
    return grammar.dns1123_subdomain(value, "value")


class Flag(NamedTuple):
    """One Config field as a command-line option (`--NAME VALUE`) and config key."""

    name: str
    parse: Callable[[Any], Any]
    metavar: str
    help: str

    @property
    def attribute(self) -> str:
        return self.name.replace("-", "_")


FLAGS = (
    Flag("annotations-prefix", _prefix, "PREFIX", "prefix of the annotations read"),
    Flag("ssl-redirect", _boolean, "BOOL", "redirect HTTP to HTTPS (308) on TLS hosts"),
    Flag("hsts", _boolean, "BOOL", "send Strict-Transport-Security on TLS hosts"),
    Flag("hsts-max-age", _hsts_max_age, "SECONDS", "HSTS max-age"),
    Flag("hsts-include-subdomains", _boolean, "BOOL", "HSTS includeSubDomains"),
    Flag("hsts-preload", _boolean, "BOOL", "HSTS preload"),
    Flag("proxy-connect-timeout", _seconds, "SECONDS", "default backend connect timeout"),
    Flag("proxy-read-timeout", _seconds, "SECONDS", "default backend read timeout"),
    Flag("proxy-send-timeout", _seconds, "SECONDS", "default backend send timeout"),
    Flag("proxy-body-size", _size, "SIZE", "default largest request body (0: unlimited)"),
)


def from_values(values: dict[str, Any]) -> Config:
    """A Config from parsed flag values by attribute name (None or absent: the default)."""
    given = {
        flag.attribute: values[flag.attribute]
        for flag in FLAGS
        if values.get(flag.attribute) is not None
    }
    return Config(**given)
