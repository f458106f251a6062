"""Names a host answers besides its own (ingress-nginx: annotations/alias, the
from-to-www-redirect of annotations/redirect).

server-alias: more names for the server of each of the Ingress's hosts (`server_name
HOST ALIAS...`). As in ingress-nginx, the first Ingress (the oldest) with aliases on a
host gives them; an alias that is a host with rules of its own is served by those rules,
not as an alias; and a name is claimed under the owner rules of `--host-owner`, as a
host is (ownership.py). model applies them, with a Problem for each alias not served.

from-to-www-redirect: `www.HOST` answers with a 308 to `HOST` (or `HOST` to `www.HOST`
when the host starts with `www.`), keeping the scheme, the port and the URI (less one
trailing slash, as ingress-nginx's redirect), over HTTPS too with the host's certificate
when it names the other name. Not when that name has rules of its own.
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

ALIAS, WWW = "server-alias", "from-to-www-redirect"
KEYS = (ALIAS, WWW)


def parse(read: Reader, config: Config) -> dict:
    return {
        "server_alias": read.get(ALIAS, grammar.server_aliases) or (),
        "from_to_www_redirect": read.get(WWW, grammar.go_boolean) or False,
    }
