"""Redirects (ingress-nginx: annotations/rewrite and annotations/redirect).

ssl-redirect (default: `Config.ssl_redirect`) redirects plain HTTP to HTTPS with 308 on
hosts listed under `spec.tls`; force-ssl-redirect does so on any host. render and the
route table apply them (`model.redirects_to_https`), where the host's TLS is known.

permanent-redirect and temporal-redirect answer every request of the Ingress's paths
with a redirect to a fixed URL, before anything else (the HTTPS redirect and the access
lists included, as ingress-nginx's `return` does): 301 and 302 unless
permanent-redirect-code (300-308) or temporal-redirect-code (300-307) say otherwise; a
code outside those is replaced by the default, as ingress-nginx does, with a warning.
temporal-redirect wins when both are set.
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

PERMANENT, PERMANENT_CODE = "permanent-redirect", "permanent-redirect-code"
TEMPORAL, TEMPORAL_CODE = "temporal-redirect", "temporal-redirect-code"
KEYS = ("ssl-redirect", "force-ssl-redirect", PERMANENT, PERMANENT_CODE, TEMPORAL, TEMPORAL_CODE)
# (lowest, highest, default) of each code, ingress-nginx's.
CODES = {PERMANENT_CODE: (300, 308, 301), TEMPORAL_CODE: (300, 307, 302)}


def parse(read: Reader, config: Config) -> dict:
    ssl_redirect = read.get("ssl-redirect", grammar.go_boolean)
    return {
        "ssl_redirect": config.ssl_redirect if ssl_redirect is None else ssl_redirect,
        "force_ssl_redirect": read.get("force-ssl-redirect", grammar.go_boolean) or False,
        "redirect": _redirect(read),
    }


def _redirect(read: Reader) -> tuple[int, str] | None:
    temporal = read.get(TEMPORAL, grammar.temporal_redirect_url)
    permanent = read.get(PERMANENT, grammar.redirect_url)
    codes = {key: _code(read, key) for key in CODES}
    if temporal and permanent:
        read.ignore(PERMANENT, f"{TEMPORAL} is set too and wins, as in ingress-nginx")
    for key, url_key in ((TEMPORAL_CODE, TEMPORAL), (PERMANENT_CODE, PERMANENT)):
        if read.has(key) and not read.has(url_key):
            read.ignore(key, f"no {url_key} is set")
    if temporal:
        return codes[TEMPORAL_CODE], temporal
    if permanent:
        return codes[PERMANENT_CODE], permanent
    return None


def _code(read: Reader, key: str) -> int:
    lowest, highest, default = CODES[key]
    code = read.get(key, grammar.http_status)
    if code is None:
        return default
    if not lowest <= code <= highest:
        read.ignore(key, f"outside {lowest}-{highest}: {default} instead, as in ingress-nginx")
        return default
    return code
