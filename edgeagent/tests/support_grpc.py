"""Real gRPC backends and clients (grpcio) for the backend-protocol tests.

The service is defined without generated code: requests and answers are raw bytes, so a
test needs no .proto. `Say` answers JSON with the backend's name, the request and the
metadata the backend received (nginx's forwarding headers among them); `Count` streams
`n` answers, which needs HTTP/2 end to end.
"""

import json
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from edgeagent.grammar import CertPair

SERVICE = "edge.Echo"
SAY = f"/{SERVICE}/Say"
COUNT = f"/{SERVICE}/Count"
SECONDS = 20


def _say(name: str):
    def say(request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = {key: value for key, value in context.invocation_metadata()}
        answer = {"backend": name, "request": request.decode(), "metadata": metadata}
        return json.dumps(answer).encode()

    return say


def _count(request: bytes, context: grpc.ServicerContext):
    for number in range(int(request)):
        yield str(number).encode()


@dataclass
class GrpcBackend:
    name: str
    host: str
    port: int
    server: grpc.Server = field(repr=False)


def start(
    name: str, host: str, pair: CertPair | None = None, client_ca: bytes | None = None
) -> GrpcBackend:
    """A gRPC server on `host` (a free port): plaintext HTTP/2, or TLS with `pair`, which
    requires a client certificate of `client_ca` if given."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(_say(name)),
        "Count": grpc.unary_stream_rpc_method_handler(_count),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if pair is None:
        port = server.add_insecure_port(f"{host}:0")
    else:
        credentials = grpc.ssl_server_credentials(
            [(pair.key_pem, pair.certificate_pem)],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
        port = server.add_secure_port(f"{host}:0", credentials)
    server.start()
    return GrpcBackend(name, host, port, server)


def channel(port: int, host: str, trusted: bytes) -> grpc.Channel:
    """A channel to the edge's HTTPS listener on loopback, for `host` (SNI and
    :authority), trusting the certificate `trusted`."""
    credentials = grpc.ssl_channel_credentials(root_certificates=trusted)
    options = [("grpc.ssl_target_name_override", host), ("grpc.default_authority", host)]
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options)


def say(channel: grpc.Channel, request: str) -> dict:
    return json.loads(channel.unary_unary(SAY)(request.encode(), timeout=SECONDS))


def count(channel: grpc.Channel, number: int) -> list[int]:
    return [int(answer) for answer in channel.unary_stream(COUNT)(b"%d" % number, timeout=SECONDS)]
