"""backend-protocol (ingress-nginx: annotations/backendprotocol).

HTTP (the default) or HTTPS: nginx speaks TLS to the backend (`proxy_pass https://`),
without verifying its certificate, as ingress-nginx does unless proxy-ssl-verify is set.
GRPC and GRPCS: `grpc_pass grpc://` (HTTP/2 without TLS) or `grpcs://`; gRPC clients
reach them over the HTTPS listeners, which speak HTTP/2 as ingress-nginx's do
(use-http2), and, as in ingress-nginx, not over plain HTTP, which stays HTTP/1.x.
AUTO_HTTP and FCGI are refused: served as HTTP, the backend would not understand the
requests.
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

KEYS = ("backend-protocol",)


def parse(read: Reader, config: Config) -> dict:
    return {"backend_protocol": read.get("backend-protocol", grammar.backend_protocol) or "HTTP"}
