"""The few bytes of HTTP/1.1 the load generator speaks, over asyncio streams.

Hand-written rather than an HTTP client library because the drill must control every
connection itself: a fresh TCP connection per probe, and a handful of keep-alive
connections whose breakage is the thing being measured (a pooled client would silently
reconnect and hide it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

# A bound so a broken peer cannot make the drill buffer without limit. The head's bound is
# the stream's own limit (asyncio's default, 64 KiB): read_response reports it overrun.
MAX_BODY_BYTES = 1 << 20


class ProtocolError(Exception):
    """The peer sent something that is not an HTTP/1.1 response."""


@dataclass(frozen=True)
class Response:
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    status: int
    headers: dict[str, str]
    body: bytes
    delimited: bool  # the body had a length; otherwise it ended with the connection

    @property
    def keeps_alive(self) -> bool:
        """False when the server announced that it closes the connection after this
        response (nginx does so after keepalive_requests): a planned close, not a break."""
        connection = self.headers.get("connection", "").lower()
        if not self.delimited or "close" in connection:
            return False
        return self.version == "HTTP/1.1" or "keep-alive" in connection


def build_request(host: str, path: str, keep_alive: bool) -> bytes:
    connection = "keep-alive" if keep_alive else "close"
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: edge-drill\r\n"
        f"Accept: */*\r\nConnection: {connection}\r\n\r\n"
    ).encode("ascii")


def parse_head(head: bytes) -> tuple[str, int, dict[str, str]]:
    """Version, status code and lower-cased headers of a response head."""
    # iso-8859-1 maps every byte, so decoding cannot fail on a garbled head.
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return parts[0], int(parts[1]), headers


async def read_response(reader: asyncio.StreamReader) -> Response:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        raise ProtocolError("connection closed before a response") from error
    except asyncio.LimitOverrunError as error:
        raise ProtocolError("response head too large") from error
    version, status, headers = parse_head(head[:-4])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Response(version, status, headers, await _read_chunked(reader), True)
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY_BYTES:
            raise ProtocolError(f"body of {length} bytes is too large")
        return Response(version, status, headers, await _read_exactly(reader, length), True)
    return Response(version, status, headers, await reader.read(MAX_BODY_BYTES), False)


async def _read_exactly(reader: asyncio.StreamReader, length: int) -> bytes:
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as error:
        raise ProtocolError("connection closed inside the body") from error


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readline()
        if not size_line.endswith(b"\r\n"):
            raise ProtocolError("connection closed inside a chunked body")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            # Trailers, if any, end with an empty line.
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            return bytes(body)
        body += await _read_exactly(reader, size + 2)
        del body[-2:]
        if len(body) > MAX_BODY_BYTES:
            raise ProtocolError("chunked body too large")
