"""Applies generations back to back until killed: the target of the SIGKILL test.

    python apply_loop.py STATE.json

STATE.json holds the Nginx of the test (paths and ports). Every round renders a new
generation (the endpoint moves; 40 TLS Secrets make staging take a good part of each
round) and applies it; the test kills this process at random moments, so the kill lands
in every step of the pipeline.
"""

import itertools
import json
import pathlib
import sys

from agentlab import Nginx, render_generation
from edgeagent.apply import Applier, Outcome
from edgeagent.cli import self_signed


def main() -> None:
    state = json.loads(pathlib.Path(sys.argv[1]).read_text())
    nginx = Nginx(pathlib.Path(state["root"]))
    nginx.http_port, nginx.https_port, nginx.status_port = state["ports"]
    applier = Applier(nginx.apply_settings())
    pairs = {f"tls-{n}": self_signed(f"h{n}.example.com") for n in range(40)}
    for round_ in itertools.count():
        rendered = render_generation(
            nginx, f"127.0.0.{2 + round_ % 200}", hosts=40, tls_pairs=pairs
        )
        result = applier.apply(rendered)
        assert result.outcome is Outcome.APPLIED, result
        print(round_, result.generation, flush=True)


if __name__ == "__main__":
    main()
