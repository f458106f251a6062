"""Pausing Python's cyclic garbage collector around bulk work that makes no cycles.

The agent's large allocations are JSON objects (a list of 10,000 Ingresses and their
Services and EndpointSlices) and the model and text made from them. None of them holds a
reference cycle, so reference counting frees them; the cyclic collector only traverses
them, again and again as they pile up: at 10,000 Ingresses, half a second of CPU to parse
the initial lists and a quarter of a first build. Pauses from several threads (the
informers list in parallel) compose: collection resumes when the last one ends, and
whatever became garbage meanwhile is collected then.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_pauses = 0


@contextlib.contextmanager
def paused() -> Iterator[None]:
    global _pauses
    with _lock:
        _pauses += 1
        gc.disable()
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0:
                gc.enable()
