"""ssl-redirect and force-ssl-redirect (ingress-nginx: annotations/rewrite).

ssl-redirect (default: `Config.ssl_redirect`) redirects plain HTTP to HTTPS with 308 on
hosts listed under `spec.tls`; force-ssl-redirect does so on any host. render applies
them (`render.redirects_to_https`), where the host's TLS is known.
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

KEYS = ("ssl-redirect", "force-ssl-redirect")


def parse(read: Reader, config: Config) -> dict:
    ssl_redirect = read.get("ssl-redirect", grammar.go_boolean)
    return {
        "ssl_redirect": config.ssl_redirect if ssl_redirect is None else ssl_redirect,
        "force_ssl_redirect": read.get("force-ssl-redirect", grammar.go_boolean) or False,
    }
