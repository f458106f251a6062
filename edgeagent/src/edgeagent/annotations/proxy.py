"""proxy-body-size and the proxy timeouts (ingress-nginx: annotations/proxy).

Unset, a location inherits the http-level defaults render writes from `Config`.
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

KEYS = ("proxy-body-size", "proxy-connect-timeout", "proxy-read-timeout", "proxy-send-timeout")


def parse(read: Reader, config: Config) -> dict:
    return {
        "proxy_body_size": read.get("proxy-body-size", grammar.size),
        "proxy_connect_timeout": read.get("proxy-connect-timeout", grammar.seconds),
        "proxy_read_timeout": read.get("proxy-read-timeout", grammar.seconds),
        "proxy_send_timeout": read.get("proxy-send-timeout", grammar.seconds),
    }
