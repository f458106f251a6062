"""A standalone nginx's main configuration for the benchmark's own servers (the backend
pods, the hand-written minimal proxy): one worker, its pid, logs and temporary files under
`root`, no access log, and the caller's http-level lines."""

from __future__ import annotations

import pathlib

MAIN = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;

events {{
    worker_connections {worker_connections};
}}

http {{
    access_log off;
    client_body_temp_path {root}/temp/body;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;
{http}}}
"""


def main_config(root: pathlib.Path, worker_connections: int, http: str) -> str:
    """nginx.conf for `root`; `http` is the rest of the http block, each line indented."""
    return MAIN.format(root=root, worker_connections=worker_connections, http=http)
