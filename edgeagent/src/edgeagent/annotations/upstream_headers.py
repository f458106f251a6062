"""What the backend is told of the request (ingress-nginx: annotations/xforwardedprefix,
annotations/upstreamvhost).

x-forwarded-prefix sends `X-Forwarded-Prefix: VALUE` (a path; `$1`-`$9` are the captures
of a regex location, as in a rewrite-target); an empty value sends none, as in
ingress-nginx. upstream-vhost sends `Host: VALUE` instead of the client's host;
X-Forwarded-Host keeps the client's. render writes them with the other proxy headers of
the location (nginx inherits no proxy_set_header into a location that sets one).
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

PREFIX, VHOST = "x-forwarded-prefix", "upstream-vhost"
KEYS = (PREFIX, VHOST)


def parse(read: Reader, config: Config) -> dict:
    prefix = None
    if read.has(PREFIX) and read.values[PREFIX] == "":
        read.get(PREFIX, grammar.string)  # supported: no header, as in ingress-nginx
    else:
        prefix = read.get(PREFIX, grammar.forwarded_prefix)
    return {"x_forwarded_prefix": prefix, "upstream_vhost": read.get(VHOST, grammar.upstream_vhost)}
