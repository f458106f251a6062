"""proxy-body-size and the proxy timeouts (ingress-nginx: annotations/proxy).

Unset, a location inherits the http-level defaults render writes from `Config`; so does
one whose value is not a number (`60s`, `15r`), as ingress-nginx serves it (`Reader.tune`).
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import SIZE_FORM, WHOLE_FORM, Reader

KEYS = ("proxy-body-size", "proxy-connect-timeout", "proxy-read-timeout", "proxy-send-timeout")


def parse(read: Reader, config: Config) -> dict:
    return {
        "proxy_body_size": read.tune("proxy-body-size", grammar.size, SIZE_FORM),
        "proxy_connect_timeout": read.tune("proxy-connect-timeout", grammar.seconds, WHOLE_FORM),
        "proxy_read_timeout": read.tune("proxy-read-timeout", grammar.seconds, WHOLE_FORM),
        "proxy_send_timeout": read.tune("proxy-send-timeout", grammar.seconds, WHOLE_FORM),
    }
