"""The test suite's loopback machinery, imported by path rather than copied.

`edgeagent/tests/agentlab.py` (real nginx with an edge node's main config, the agent as a
process, object builders) and `support_http.py` (free ports, one-shot requests) are plain
modules of the test directory, not of an installed package; the benchmark puts that
directory on the import path once, here.
"""

import pathlib
import sys

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "edgeagent" / "tests"))

import agentlab  # noqa: E402  (needs the path above)
import support_http  # noqa: E402

__all__ = ["REPOSITORY", "agentlab", "support_http"]
