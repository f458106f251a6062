"""preserve-trailing-slash (ingress-nginx: annotations/rewrite, its lua_ingress.lua): what
the redirect of ssl-redirect and force-ssl-redirect does with a URI that ends in `/`.

ingress-nginx drops that one slash (`http://h/a/` answers `https://h/a`, `http://h/`
answers `https://h`) unless the annotation is true. The edge keeps the URI whole unless it
is false: a redirect target with its slash is the one the client asked for, and a backend
that serves `/a/` would otherwise send the client back to it. render writes the stripping
redirect before the plain one.
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

KEYS = ("preserve-trailing-slash",)


def parse(read: Reader, config: Config) -> dict:
    preserve = read.get("preserve-trailing-slash", grammar.go_boolean)
    return {"preserve_trailing_slash": preserve is not False}
