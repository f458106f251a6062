"""proxy-next-upstream, -tries, -timeout (ingress-nginx: annotations/proxy).

When a request goes to the next endpoint of its Service: `proxy_next_upstream` (for gRPC
backends `grpc_next_upstream`) with the conditions listed, space-separated, as
ingress-nginx writes them (`off` alone: never); at most `-tries` tries in all (0: no
limit) within `-timeout` seconds (0: no limit). Unset, a location keeps nginx's
defaults (`error timeout`, no limits). Both modes: the dynamic mode's balancer is called
again for each try nginx decides on, and nginx caps its tries as in the static mode.
A value not of the form ingress-nginx reads (`3x`, `10s`) is ignored with a warning, as
ingress-nginx serves the Ingress with its default then (`Reader.tune`).
"""

import re

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import WHOLE_FORM, Reader
from edgeagent.grammar import Invalid

KEYS = ("proxy-next-upstream", "proxy-next-upstream-tries", "proxy-next-upstream-timeout")
# nginx's conditions (ngx_http_proxy_module, the same for grpc_next_upstream).
CONDITIONS = (
    "error",
    "timeout",
    "invalid_header",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_403",
    "http_404",
    "http_429",
    "non_idempotent",
)
# ingress-nginx's validator of proxy-next-upstream (annotations/proxy, validUpstreamAnnotation):
# unlike its size validators it keeps the blanks, so one at most after each condition and
# none before the first (' off ' is not of the form: ingress-nginx serves its default).
CONDITIONS_FORM = re.compile(rf"(({'|'.join(CONDITIONS)}|off)\s?)+")
TRIES_MAX = 1000
WHOLE = re.compile(r"[0-9]{1,7}")


def next_upstream(value: object, what: str) -> str:
    """Conditions from `CONDITIONS`, blank-separated, each once; or `off` alone."""
    words = grammar.string(value, what).split()
    if words == ["off"]:
        return "off"
    unknown = [word for word in words if word not in CONDITIONS]
    if not words or unknown or len(set(words)) != len(words):
        raise Invalid(
            f"{what} {grammar.show(str(value))} must be 'off' or distinct conditions among "
            + ", ".join(CONDITIONS)
        )
    return " ".join(words)


def tries(value: object, what: str) -> int:
    text = grammar.string(value, what).strip()
    if not WHOLE.fullmatch(text) or int(text) > TRIES_MAX:
        raise Invalid(f"{what} {grammar.show(text)} must be a whole number from 0 to {TRIES_MAX}")
    return int(text)


def timeout(value: object, what: str) -> int:
    text = grammar.string(value, what).strip()
    if not WHOLE.fullmatch(text) or int(text) > grammar.SECONDS_MAX:
        raise Invalid(
            f"{what} {grammar.show(text)} must be a whole number of seconds from 0 to "
            f"{grammar.SECONDS_MAX}"
        )
    return int(text)


def parse(read: Reader, config: Config) -> dict:
    return {
        "next_upstream": read.tune("proxy-next-upstream", next_upstream, CONDITIONS_FORM),
        "next_upstream_tries": read.tune("proxy-next-upstream-tries", tries, WHOLE_FORM),
        "next_upstream_timeout": read.tune("proxy-next-upstream-timeout", timeout, WHOLE_FORM),
    }
