"""Applies generations back to back until killed: the target of the SIGKILL test.

    python apply_loop.py STATE.json

STATE.json holds the Nginx of the test (paths and ports). For every line read on stdin
the process forks a child (imports and keys are ready, so a round costs no start-up) and
prints `child PID`. The child renders and applies new generations back to back (the
endpoint moves; 40 TLS Secrets make staging a good part of each round), printing
`applied GENERATION` after each; the test kills it with SIGKILL at random moments, so the
kill lands in every step of the pipeline.
"""

import itertools
import json
import os
import pathlib
import sys

from agentlab import Nginx, render_generation
from edgeagent.apply import Applier, Outcome
from edgeagent.cli import self_signed


def apply_forever(nginx: Nginx, pairs: dict, offset: int) -> None:
    applier = Applier(nginx.apply_settings())
    for round_ in itertools.count(offset):
        rendered = render_generation(nginx, f"127.0.0.{2 + round_ % 200}", 40, pairs)
        result = applier.apply(rendered)
        if result.outcome not in (Outcome.APPLIED, Outcome.UNCHANGED):
            print(f"failed {result}", flush=True)
            os._exit(1)
        print(f"applied {result.generation}", flush=True)


def main() -> None:
    state = json.loads(pathlib.Path(sys.argv[1]).read_text())
    nginx = Nginx(pathlib.Path(state["root"]))
    nginx.http_port, nginx.https_port, nginx.status_port = state["ports"]
    pairs = {f"tls-{n}": self_signed(f"h{n}.example.com") for n in range(40)}
    render_generation(nginx, "127.0.0.1", 40, pairs)  # warm the caches before forking
    for offset, _ in enumerate(sys.stdin):
        child = os.fork()
        if child == 0:
            apply_forever(nginx, pairs, offset * 37)
        print(f"child {child}", flush=True)
        while True:  # reap the children killed so far
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    break
            except ChildProcessError:
                break


if __name__ == "__main__":
    main()
