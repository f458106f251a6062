"""What ingress-nginx took from its flags and ConfigMap: the annotation prefix and the
defaults every Ingress gets unless an annotation says otherwise.

Each field is an `edgeagent run` option (`options.option` metadata; settings.py makes the
flags and config-file keys of `run` from them, cli.py those of `render` and `check`), and a
role variable of the same name (roles/edgeagent, docs/roles.md). The defaults are
ingress-nginx's own (docs/user-guide/nginx-configuration/configmap.md), so that an Ingress
moved from it is served the same way.
"""

from dataclasses import dataclass, field
from typing import Any

from edgeagent import grammar
from edgeagent.options import option


def _boolean(value: Any) -> bool:
    """A flag's text ("true"/"false") or a YAML boolean."""
    if isinstance(value, bool):
        return value
    return grammar.boolean(value, "value")


def _whole(value: Any) -> str:
    """A YAML number as the text the grammar reads."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _seconds(value: Any) -> int:
    return grammar.seconds(_whole(value), "value")


def _hsts_max_age(value: Any) -> int:
    return grammar.hsts_max_age(_whole(value), "value")


def _size(value: Any) -> str:
    return grammar.size(_whole(value), "value")


def _prefix(value: Any) -> str:
    return grammar.dns1123_subdomain(value, "value")


def _service(value: Any) -> str:
    """NAMESPACE/NAME, or "" for none."""
    text = grammar.string(value, "value")
    if text:
        namespace, slash, name = text.partition("/")
        if not slash:
            raise grammar.Invalid(f"value {grammar.show(text)} must be NAMESPACE/NAME")
        grammar.dns1123_label(namespace, "value")
        grammar.dns1035_label(name, "value")
    return text


def _header_names(value: Any) -> tuple[str, ...]:
    """Comma-separated names (a flag's text, ingress-nginx's ConfigMap value) or a list."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = (str(item).strip() for item in items)
    return tuple(grammar.header_name(name, "value") for name in names if name)


def _default(flag: str, help: str, metavar: str, parse) -> dict[str, Any]:
    return option(flag, f"{help} (default: %(default)s; ingress-nginx's)", metavar, parse)


@dataclass(frozen=True)
class Config:
    annotations_prefix: str = field(
        default="nginx.ingress.kubernetes.io",
        metadata=_default(
            "annotations-prefix", "prefix of the annotations read", "PREFIX", _prefix
        ),
    )
    """The prefix of the annotations read (ingress-nginx's `--annotations-prefix`)."""

    ssl_redirect: bool = field(
        default=True,
        metadata=_default(
            "ssl-redirect", "redirect HTTP to HTTPS (308) on TLS hosts", "BOOL", _boolean
        ),
    )
    """Redirect plain HTTP to HTTPS (308) on hosts listed under `spec.tls`, as
    ingress-nginx does by default; `ssl-redirect: "false"` turns it off per Ingress.
    Locations under /.well-known/acme-challenge/ are never redirected (HTTP-01)."""

    hsts: bool = field(
        default=True,
        metadata=_default("hsts", "send Strict-Transport-Security on TLS hosts", "BOOL", _boolean),
    )
    """Send Strict-Transport-Security on HTTPS answers of hosts listed under `spec.tls`."""

    hsts_max_age: int = field(
        default=31536000,
        metadata=_default("hsts-max-age", "HSTS max-age", "SECONDS", _hsts_max_age),
    )
    """Its max-age in seconds (one year, ingress-nginx's default)."""

    hsts_include_subdomains: bool = field(
        default=True,
        metadata=_default("hsts-include-subdomains", "HSTS includeSubDomains", "BOOL", _boolean),
    )
    """Add includeSubDomains (ingress-nginx's default)."""

    hsts_preload: bool = field(
        default=False, metadata=_default("hsts-preload", "HSTS preload", "BOOL", _boolean)
    )
    """Add preload (off: preloading is a commitment a default must not make)."""

    proxy_connect_timeout: int = field(
        default=5,
        metadata=_default(
            "proxy-connect-timeout", "default backend connect timeout", "SECONDS", _seconds
        ),
    )
    """Seconds to connect to a backend (ingress-nginx's default; nginx's own is 60)."""

    proxy_read_timeout: int = field(
        default=60,
        metadata=_default(
            "proxy-read-timeout", "default backend read timeout", "SECONDS", _seconds
        ),
    )
    """Seconds between two reads from a backend."""

    proxy_send_timeout: int = field(
        default=60,
        metadata=_default(
            "proxy-send-timeout", "default backend send timeout", "SECONDS", _seconds
        ),
    )
    """Seconds between two writes to a backend."""

    proxy_body_size: str = field(
        default="1m",
        metadata=_default(
            "proxy-body-size", "default largest request body (0: unlimited)", "SIZE", _size
        ),
    )
    """Largest request body (nginx size; "0": unlimited)."""

    default_backend_service: str = field(
        default="",
        metadata=option(
            "default-backend-service",
            "NAMESPACE/NAME of the Service whose answers replace the custom-http-errors of "
            "Ingresses without a default-backend annotation (default: none, nginx's own "
            "error pages; ingress-nginx's --default-backend-service)",
            "NAMESPACE/NAME",
            _service,
        ),
    )
    """The Service (on its first port) that answers an Ingress's custom-http-errors when
    the Ingress names no default-backend, as ingress-nginx's controller default backend
    (`annotations.errorpages`). Empty: none, and those Ingresses keep nginx's own error
    pages (a warning each). ingress-nginx's own 404 for unknown hosts is not taken from it:
    the edge's default server answers those itself."""
    global_allowed_response_headers: tuple[str, ...] = field(
        default=(),
        metadata=_default(
            "global-allowed-response-headers",
            "response headers the custom-headers annotation may set",
            "NAME[,NAME]",
            _header_names,
        ),
    )
    """The headers a `custom-headers` ConfigMap may set (compared without case). None by
    default, as ingress-nginx's: the operator says which headers Ingresses may add to the
    answers, so that no Ingress overrides one the edge or its operator relies on."""
    enable_ssl_passthrough: bool = field(
        default=False,
        metadata=option(
            "enable-ssl-passthrough",
            "serve the ssl-passthrough annotation: nginx's stream module takes the HTTPS "
            "address and passes the TLS connections of those hosts to their backends "
            "untouched, the others to the edge's HTTPS servers (needs libnginx-mod-stream)",
            parse=_boolean,
        ),
    )
    """Off, as ingress-nginx's `--enable-ssl-passthrough`: on, every HTTPS connection
    takes one more hop through the stream module, which only the Ingresses that ask for
    passthrough need (docs/routing.md, "TLS passthrough")."""
