"""The backend pods: one static nginx answering on every pod address of the benchmark.

A real HTTP server on loopback, fast enough that the proxy, not the backend, is what the
throughput figure measures (a Python echo server would be the bottleneck of both runs).
It listens on one port on each pod address of `cluster.py`, 127.0.0.2-6 before a rolling
update and 127.0.1.2-6 after, and answers every request with 200 and a short body.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

import cluster
import standalone_nginx
from suite import agentlab, support_http

BODY = "bench backend: ok\n"
SERVER = """\

    server {{
{listens}
        default_type text/plain;
        location / {{
            return 200 "{body}";
        }}
    }}
"""


class Backend:
    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.addresses = [
            cluster.pod_address(endpoint, network)
            for network in range(len(cluster.POD_NETWORKS))
            for endpoint in range(cluster.ENDPOINTS_PER_SERVICE)
        ]
        self.port = support_http.free_port(self.addresses[0])

    def start(self) -> Backend:
        (self.root / "temp").mkdir(parents=True)
        listens = "\n".join(f"        listen {a}:{self.port};" for a in self.addresses)
        config = self.root / "nginx.conf"
        config.write_text(
            standalone_nginx.main_config(
                self.root,
                worker_connections=1024,
                http=SERVER.format(listens=listens, body=BODY.replace("\n", "\\n")),
            )
        )
        subprocess.run([agentlab.NGINX, "-c", str(config)], check=True, timeout=30)
        return self

    def stop(self) -> None:
        pid_file = self.root / "nginx.pid"
        try:
            os.kill(int(pid_file.read_text()), signal.SIGQUIT)
        except (OSError, ValueError):
            return
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
