"""backend-protocol (ingress-nginx: annotations/backendprotocol).

HTTP (the default) or HTTPS: nginx speaks TLS to the backend (`proxy_pass https://`),
without verifying its certificate, as ingress-nginx does unless proxy-ssl-verify is set.
GRPC, GRPCS, AUTO_HTTP and FCGI are refused for now: served as HTTP, the backend would
not understand the requests.
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

KEYS = ("backend-protocol",)


def parse(read: Reader, config: Config) -> dict:
    return {"backend_https": read.get("backend-protocol", grammar.backend_protocol) == "HTTPS"}
