"""Exponential backoff: how long to wait after the n-th failure in a row."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """`initial` after the first failure, doubled per further failure up to `maximum`.

    With `jitter`, each delay is drawn between half of it and all of it, so that many
    agents that failed together (an API server outage) do not retry in step.
    """

    initial: float
    maximum: float
    jitter: bool = False
    failures: int = 0
    """Failures in a row since the last success."""

    def failed(self) -> float:
        """Count a failure; the delay before the next attempt, in seconds."""
        self.failures += 1
        delay = min(self.maximum, self.initial * 2 ** (self.failures - 1))
        return delay * random.uniform(0.5, 1.0) if self.jitter else delay

    def succeeded(self) -> None:
        self.failures = 0
