"""Proxy buffering and the backend's HTTP version (ingress-nginx: annotations/proxy).

proxy-buffer-size and proxy-buffers-number are written together, as ingress-nginx
writes them (`proxy_buffer_size S; proxy_buffers N S;`, with its defaults 4k and 4 for
the one not set): nginx refuses a buffer size above its default unless the buffers grow
with it. Unset, a location keeps nginx's defaults.

proxy-busy-buffers-size and proxy-max-temp-file-size must agree with those buffers as
nginx's proxy module checks when it loads the configuration (ngx_http_proxy_merge_loc_conf):
busy buffers at least one buffer and at most all buffers but one, temporary files off (0)
or at least one buffer. An Ingress that breaks a rule is refused with it, rather than
failing `nginx -t`. client-body-buffer-size is at most 1m: every request body up to it is
held in memory, and a larger one is written to a file anyway.

A value of the proxy-* keys not of the form ingress-nginx reads (`4kb`, `On`, `2`) is
ignored with a warning, as ingress-nginx serves the Ingress with its default then
(`Reader.tune`); client-body-buffer-size has no such leniency there (an invalid value
rejects the Ingress), nor here.
"""

from collections.abc import Callable

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import (
    HTTP_VERSION_FORM,
    ON_OFF_FORM,
    SIZE_FORM,
    WHOLE_FORM,
    Reader,
)
from edgeagent.grammar import Invalid

KEYS = (
    "proxy-buffering",
    "proxy-request-buffering",
    "proxy-buffer-size",
    "proxy-buffers-number",
    "proxy-http-version",
    "proxy-busy-buffers-size",
    "proxy-max-temp-file-size",
    "client-body-buffer-size",
)
DEFAULT_BUFFER_SIZE = "4k"
DEFAULT_BUFFERS_NUMBER = 4
NGINX_BUFFERS = (8, "4k")
"""nginx's own `proxy_buffers` (8 buffers of a memory page: 4k on Debian's amd64 and arm64)
when a location sets none; its `proxy_buffer_size` is one page too."""
UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def size_in_bytes(size: str) -> int:
    unit = UNITS.get(size[-1], 1)
    return int(size.rstrip("kmg")) * unit


def busy_buffers_size(buffers: tuple[int, str]) -> Callable[[object, str], str]:
    number, size = buffers
    one, most = size_in_bytes(size), (number - 1) * size_in_bytes(size)

    def parse(value: object, what: str) -> str:
        text = grammar.buffer_size(value, what)
        if not one <= size_in_bytes(text) <= most:
            raise Invalid(
                f"{what} {grammar.show(text)} must be from one buffer ({size}) to all buffers "
                f"but one ({number - 1} x {size}), as nginx requires"
            )
        return text

    return parse


def max_temp_file_size(buffers: tuple[int, str]) -> Callable[[object, str], str]:
    size = buffers[1]

    def parse(value: object, what: str) -> str:
        text = grammar.size(value, what)
        if text != "0" and size_in_bytes(text) < size_in_bytes(size):
            raise Invalid(
                f"{what} {grammar.show(text)} must be 0 (no temporary files) or at least one "
                f"buffer ({size}), as nginx requires"
            )
        return text

    return parse


def parse(read: Reader, config: Config) -> dict:
    size = read.tune("proxy-buffer-size", grammar.buffer_size, SIZE_FORM)
    number = read.tune("proxy-buffers-number", grammar.buffers_number, WHOLE_FORM)
    buffers = None
    if read.has("proxy-buffer-size") or read.has("proxy-buffers-number"):
        buffers = (number or DEFAULT_BUFFERS_NUMBER, size or DEFAULT_BUFFER_SIZE)
    effective = buffers or NGINX_BUFFERS
    return {
        "proxy_busy_buffers_size": read.tune(
            "proxy-busy-buffers-size", busy_buffers_size(effective), SIZE_FORM
        ),
        "proxy_max_temp_file_size": read.tune(
            "proxy-max-temp-file-size", max_temp_file_size(effective), SIZE_FORM
        ),
        "client_body_buffer_size": read.get("client-body-buffer-size", grammar.buffer_size),
        "proxy_buffering": read.tune("proxy-buffering", grammar.on_off, ON_OFF_FORM),
        "proxy_request_buffering": read.tune(
            "proxy-request-buffering", grammar.on_off, ON_OFF_FORM
        ),
        "proxy_buffers": buffers,
        "proxy_http_version": read.tune(
            "proxy-http-version", grammar.http_version, HTTP_VERSION_FORM
        ),
    }
