"""ssl-passthrough (ingress-nginx: annotations/sslpassthrough, its controller's
passthrough servers).

"true" asks that TLS connections to the Ingress's hosts reach the backend of its rule for
`/` untouched: the edge reads the name of the ClientHello and terminates nothing, so paths
and every annotation that acts on requests do not apply to them (docs/routing.md, "TLS
passthrough"; `edgeagent.passthrough` chooses the hosts). It needs the agent's
`--enable-ssl-passthrough`, as ingress-nginx's: without it the Ingress is refused, since
serving it would terminate the TLS its author wanted to reach the backend whole.
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

KEYS = ("ssl-passthrough",)
DISABLED = (
    "the agent runs without --enable-ssl-passthrough (role variable "
    "edgeagent_enable_ssl_passthrough), and serving the Ingress would terminate the TLS "
    "its author wanted to reach the backend untouched"
)


def parse(read: Reader, config: Config) -> dict:
    wanted = read.get("ssl-passthrough", grammar.go_boolean)
    if wanted and not config.enable_ssl_passthrough:
        value = read.values["ssl-passthrough"]
        read.refuse(
            "ssl-passthrough",
            f"annotation {read.prefix}ssl-passthrough {grammar.show(value)} is refused: {DISABLED}",
        )
    return {"ssl_passthrough": bool(wanted) and config.enable_ssl_passthrough}
