"""Proxy buffering and the backend's HTTP version (ingress-nginx: annotations/proxy).

proxy-buffer-size and proxy-buffers-number are written together, as ingress-nginx
writes them (`proxy_buffer_size S; proxy_buffers N S;`, with its defaults 4k and 4 for
the one not set): nginx refuses a buffer size above its default unless the buffers grow
with it. Unset, a location keeps nginx's defaults.
"""

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader

KEYS = (
    "proxy-buffering",
    "proxy-request-buffering",
    "proxy-buffer-size",
    "proxy-buffers-number",
    "proxy-http-version",
)
DEFAULT_BUFFER_SIZE = "4k"
DEFAULT_BUFFERS_NUMBER = 4


def parse(read: Reader, config: Config) -> dict:
    size = read.get("proxy-buffer-size", grammar.buffer_size)
    number = read.get("proxy-buffers-number", grammar.buffers_number)
    buffers = None
    if read.has("proxy-buffer-size") or read.has("proxy-buffers-number"):
        buffers = (number or DEFAULT_BUFFERS_NUMBER, size or DEFAULT_BUFFER_SIZE)
    return {
        "proxy_buffering": read.get("proxy-buffering", grammar.on_off),
        "proxy_request_buffering": read.get("proxy-request-buffering", grammar.on_off),
        "proxy_buffers": buffers,
        "proxy_http_version": read.get("proxy-http-version", grammar.http_version),
    }
