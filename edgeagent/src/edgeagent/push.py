"""Dynamic mode, the agent's side: what nginx holds of the dynamic state, and what to push.

The controller hands each sync's `dynamic.State` to `DynamicPush`: `write_files` before
the apply (certificate files and state.txt, which a reload or a restart loads), `push`
after it (the whole state after a reload or when nginx's is unknown, else what changed
since the last push), and `verify` every `verify_interval`, which compares the version
nginx holds with the last push: a restarted nginx holds state.txt's, and gets the whole
state again. A push that fails is retried in full after a growing delay (`Backoff`).
"""

from __future__ import annotations

import dataclasses
import logging
import time

from edgeagent import dynamic
from edgeagent.backoff import Backoff
from edgeagent.control import NEEDS_FULL_PUSH, Control, ControlError
from edgeagent.metrics import Metrics

log = logging.getLogger(__name__)


class DynamicPush:
    def __init__(
        self, control: Control, metrics: Metrics, verify_interval: float, backoff: Backoff
    ) -> None:
        self.control = control
        self.metrics = metrics
        self.verify_interval = verify_interval
        self.backoff = backoff
        self.pushed: dynamic.State | None = None
        """The last state nginx took; None: push the whole state next."""
        self.pushed_version = 0
        self.written: dynamic.State = dynamic.EMPTY
        """What the certificate files and state.txt on disk hold."""
        self.verify_at = time.monotonic() + verify_interval

    def write_files(self, state: dynamic.State, state_file: bool = True) -> bool:
        """Certificate files and state.txt (unless `state_file` is False: no reload is
        due before the next call), before anything may reload nginx. False if they could
        not be written (logged)."""
        try:
            if state.certificates != self.written.certificates:
                self.control.write_certificates(state)
            written = (self.written.backends, self.written.hosts, self.written.routes)
            if state_file and (state.backends, state.hosts, state.routes) != written:
                self.control.write_state(state)
        except OSError as error:
            log.error("cannot write the dynamic state", extra={"error": str(error)})
            return False
        if state_file:
            self.written = state
        else:
            self.written = dataclasses.replace(self.written, certificates=state.certificates)
        return True

    def verify(self) -> bool:
        """True if nginx holds another version than the last push: the whole state is due
        now. An unanswered question is no news (the next verification asks again)."""
        self.verify_at = time.monotonic() + self.verify_interval
        try:
            holds = self.control.serving_version()
        except ControlError as error:
            log.warning("cannot read the dynamic state's version", extra={"error": str(error)})
            return False
        if holds == self.pushed_version:
            return False
        log.info("nginx holds another dynamic state", extra={"version": holds})
        self.pushed = None
        return True

    def push(self, state: dynamic.State, full: bool) -> float | None:
        """Push the whole state (after a reload, or when nginx's is unknown) or what changed
        since the last push; count it by kind. None if nginx took it, else the seconds
        to wait before the next attempt."""
        full = full or self.pushed is None
        update = state if full else dynamic.delta(self.pushed or dynamic.EMPTY, state)
        if not full and dynamic.is_empty(update):
            return None
        kinds = ["full"] if full else dynamic.kinds(update)
        try:
            try:
                version = self.control.push(update, full)
            except ControlError as error:
                if full or error.status != NEEDS_FULL_PUSH:
                    raise
                # nginx restarted (or reloaded onto state.txt) since the last push, and
                # the verification has not noticed yet: it holds no certificate at all.
                full, update, kinds = True, state, ["full"]
                version = self.control.push(update, full)
        except (ControlError, ValueError) as error:
            for kind in kinds:
                self.metrics.dynamic_updates.labels(kind, "failed").inc()
            log.error("dynamic update failed", extra={"error": str(error), "kinds": kinds})
            self.pushed = None
            return self.backoff.failed()
        self.backoff.succeeded()
        for kind in kinds:
            self.metrics.dynamic_updates.labels(kind, "success").inc()
        log.info(
            "dynamic update",
            extra={"version": version, "kinds": kinds, "backends": len(update.backends)},
        )
        self.pushed, self.pushed_version = state, version
        return None

    def remove_unused_certificates(self, state: dynamic.State) -> None:
        """After a reload onto `state`'s generation, no configuration names the others."""
        self.control.remove_certificates_except(state)
