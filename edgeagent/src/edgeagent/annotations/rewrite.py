"""rewrite-target and use-regex (ingress-nginx: annotations/rewrite).

use-regex makes the Ingress's paths regular expressions; so does a rewrite-target that
differs from a path. As in ingress-nginx, a host with one such path has all its paths,
whichever Ingress they come from, matched as case-insensitive regular expressions from
the start of the path (`location ~* "^PATH"`), longest first, and a path of an Ingress
with rewrite-target gets `rewrite "(?i)PATH" TARGET break;` (`$1`-`$9` are its
captures; the query string is kept). model and render apply them.

app-root: a request for `/` on the Ingress's hosts answers 302 to that path, before
anything else of the server, as ingress-nginx's server-level `if ($uri = /)` does.
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

KEYS = ("rewrite-target", "use-regex", "app-root")


def parse(read: Reader, config: Config) -> dict:
    target = read.get("rewrite-target", grammar.rewrite_target)
    use_regex = read.get("use-regex", grammar.go_boolean) or False
    # An invalid target refuses the Ingress; its paths are still read as the regexes
    # they were written as, so that they add no misleading problem of their own.
    invalid_target = read.has("rewrite-target") and target is None
    return {
        "rewrite_target": target,
        "use_regex": use_regex or invalid_target,
        "app_root": read.get("app-root", grammar.app_root),
    }
