"""Response headers from a ConfigMap (ingress-nginx >= 1.10: annotations/customheaders,
`more_set_headers` in its template).

`custom-headers: NAMESPACE/NAME` (or `NAME`) names a ConfigMap of the Ingress's own
namespace, as ingress-nginx allows only that; its data are headers set on every answer
of the Ingress's paths, replacing a backend's header of the same name (nginx
`proxy_hide_header` and `add_header ... always`). Each name must be listed in
`Config.global_allowed_response_headers` (ingress-nginx's ConfigMap key
`global-allowed-response-headers`), compared without case; the allow list is empty by
default, as ingress-nginx's, so that no Ingress sets a header its operator did not allow.

The ConfigMap is read when the configuration is built (`resolve`): one missing, a name
not allowed, or a name or value outside the grammar (header names of letters, digits and
`-`; values of printable ASCII without `"`, `$` and `\\`, which nginx would read as
syntax or variables) makes the Ingress's paths answer 503, as ingress-nginx's denied
locations do, and is reported on the Ingress.
"""

from dataclasses import dataclass, replace

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

CONFIG_MAP = "custom-headers"
KEYS = (CONFIG_MAP,)
HEADERS_MAX = 64


@dataclass(frozen=True)
class CustomHeaders:
    config_map: tuple[str | None, str]
    """(namespace as written or None, name) of the ConfigMap."""
    headers: tuple[tuple[str, str], ...] | None = None
    """(name, value) pairs, sorted, once resolved; None: unusable (503)."""


def parse(read: Reader, config: Config) -> dict:
    return {"custom_headers": read.get(CONFIG_MAP, _reference)}


def _reference(value: object, what: str) -> CustomHeaders:
    text = grammar.string(value, what)
    namespace, slash, name = text.rpartition("/")
    if slash:
        grammar.dns1123_label(namespace, f"{what}: the namespace")
    grammar.dns1123_subdomain(name, f"{what}: the ConfigMap name")
    return CustomHeaders((namespace if slash else None, name))


def check_namespace(wanted: CustomHeaders | None, namespace: str, config: Config) -> None:
    """Raises `Invalid` for a ConfigMap of another namespace than the Ingress's."""
    if wanted is not None and wanted.config_map[0] not in (None, namespace):
        written = grammar.show("/".join(wanted.config_map))
        raise Invalid(
            f"annotation {config.annotations_prefix}/{CONFIG_MAP} {written} is refused: only "
            f"ConfigMaps of the Ingress's own namespace ({namespace}) are read, as in "
            "ingress-nginx",
            "unsupported",
        )


def resolve(
    wanted: CustomHeaders, config_map: dict | None, config: Config
) -> tuple[CustomHeaders, str | None]:
    """The headers of the ConfigMap, checked, or none (503) and the reason."""
    try:
        return replace(wanted, headers=_headers(wanted, config_map, config)), None
    except Invalid as error:
        return replace(wanted, headers=None), str(error)


def _headers(wanted: CustomHeaders, config_map: dict | None, config: Config) -> tuple:
    where = f"ConfigMap {grammar.show(wanted.config_map[1])} of {CONFIG_MAP}"
    if config_map is None:
        raise Invalid(f"{where} does not exist")
    data = config_map.get("data") or {}
    if not isinstance(data, dict):
        raise Invalid(f"{where}: its data is not a mapping")
    if len(data) > HEADERS_MAX:
        raise Invalid(f"{where} holds more than {HEADERS_MAX} headers")
    allowed = {name.lower() for name in config.global_allowed_response_headers}
    headers = []
    for name, value in sorted(data.items()):
        header = grammar.header_name(name, f"{where}: header name")
        if header.lower() not in allowed:
            raise Invalid(
                f"{where}: header {header} is not allowed by global-allowed-response-headers "
                f"({', '.join(config.global_allowed_response_headers) or 'none'})"
            )
        headers.append((header, grammar.header_value(value, f"{where}: the value of {header}")))
    return tuple(headers)


# The second lock: what render writes of a header, checked again.
render_name = grammar.second_lock(grammar.HEADER_NAME, "a header name")
render_value = grammar.second_lock(grammar.HEADER_VALUE, "a header value")
