"""Client address lists (ingress-nginx: annotations/ipallowlist, ipdenylist).

`allowlist-source-range` (or its older name `whitelist-source-range`; the new name wins
when both are set, as in ingress-nginx) lets only the listed networks in; every other
client gets 403. `denylist-source-range` turns the listed networks away with 403. Both
are comma-separated CIDRs or single addresses, IPv4 or IPv6, spaces and line breaks
around the items allowed (long lists are written over several lines). nginx checks
the deny list first, then the allow list.
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

ALLOW, ALLOW_OLD, DENY = "allowlist-source-range", "whitelist-source-range", "denylist-source-range"
KEYS = (ALLOW, ALLOW_OLD, DENY)


def parse(read: Reader, config: Config) -> dict:
    if read.has(ALLOW) and read.has(ALLOW_OLD):
        read.ignore(ALLOW_OLD, f"{ALLOW} is set too and takes precedence, as in ingress-nginx")
        allow = read.get(ALLOW, grammar.source_ranges)
    else:
        allow = read.get(ALLOW, grammar.source_ranges) or read.get(ALLOW_OLD, grammar.source_ranges)
    return {
        "allow": allow or (),
        "deny": read.get(DENY, grammar.source_ranges) or (),
    }
