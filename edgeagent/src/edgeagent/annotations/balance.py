"""upstream-hash-by and load-balance (ingress-nginx: annotations/upstreamhashby,
annotations/loadbalancing).

upstream-hash-by sends the requests of the Ingress with the same key to the same
endpoint, by consistent hashing (an endpoint that comes or goes moves only its share of
the keys), as ingress-nginx's `hash KEY consistent`. The key is nginx variables and
plain text from a safe grammar (`HASH_KEY`): the request's URI, arguments, client
address, host, scheme, request headers, query arguments and cookies. Static mode: the
Ingress's locations proxy to an upstream of their own with `hash KEY consistent;`;
dynamic mode: the location sets `$edgeagent_hash_key` and the Lua balancer hashes it on
a ring of the backend's peers. A retry goes to the next endpoint on the ring.

load-balance: `round_robin` is what both modes do; `ewma` (ingress-nginx's Lua latency
balancer) is served as round robin with a warning: plain nginx has no such balancer.
"""

import re

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

HASH_BY, LOAD_BALANCE = "upstream-hash-by", "load-balance"
KEYS = (HASH_BY, LOAD_BALANCE)
# A variable never followed by a name character, which nginx would read as part of it.
_VARIABLE = (
    r"\$(?:request_uri|uri|args|remote_addr|binary_remote_addr|host|scheme|server_name"
    r"|http_[a-z0-9_]+|arg_[A-Za-z0-9_]+|cookie_[A-Za-z0-9_]+)(?![A-Za-z0-9_])"
)
HASH_KEY = re.compile(
    rf"(?:{_VARIABLE}|[A-Za-z0-9.:/-])*{_VARIABLE}(?:{_VARIABLE}|[A-Za-z0-9.:/-])*"
)
HASH_KEY_MAX_LENGTH = 256
BALANCERS = ("round_robin", "ewma")


def hash_key(value: object, what: str) -> str:
    text = grammar.string(value, what).strip()
    if len(text) > HASH_KEY_MAX_LENGTH or not HASH_KEY.fullmatch(text):
        raise Invalid(
            f"{what} {grammar.show(text)} must be nginx variables ($request_uri, $uri, $args, "
            "$remote_addr, $binary_remote_addr, $host, $scheme, $server_name, $http_NAME, "
            "$arg_NAME, $cookie_NAME) and letters, digits and .:/- , at least one variable, "
            f"at most {HASH_KEY_MAX_LENGTH} characters"
        )
    return text


def balancer(value: object, what: str) -> str:
    text = grammar.string(value, what).strip()
    if text not in BALANCERS:
        raise Invalid(f"{what} {grammar.show(text)} must be one of " + ", ".join(BALANCERS))
    return text


def parse(read: Reader, config: Config) -> dict:
    key = read.get(HASH_BY, hash_key)
    chosen = read.get(LOAD_BALANCE, balancer)
    if chosen == "ewma" and key is None:
        read.ignore(
            LOAD_BALANCE,
            "plain nginx has no EWMA balancer; both modes balance round robin (weighted)",
        )
    elif chosen is not None and key is not None:
        read.ignore(LOAD_BALANCE, f"{HASH_BY} is set too and wins, as in ingress-nginx")
    return {"upstream_hash_by": key}
