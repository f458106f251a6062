"""Dynamic mode, the I/O side: the files nginx reads and the control endpoint it answers.

`<nginx_dir>/dynamic/` (the agent's; docs/dynamic.md):

- `control.token`: 64 hex digits, mode 0600, made once by the agent and kept (nginx's
  master reads it at start and at every reload, so a new token would need a reload). Every
  push carries it; other local users can reach the loopback port but not the token.
- `state.txt`: the last backends the agent pushed or is about to (a full state in the
  push format, without certificates). init_by_lua loads it, so a restarted nginx serves
  the last pushed peers even if the agent is gone, and a reload serves the peers known
  when its configuration was rendered.
- `certs/<key>.pem` (mode 0600): the pair of every TLS Secret in use, named by the
  static `ssl_certificate` lines, so nginx starts with the right pairs; a rotation
  rewrites the file and pushes the pair, which ssl_certificate_by_lua serves from then on.

Files are replaced atomically (`files.write_atomically`), so nginx never reads a
half-written one. Versions grow with every push and across agent restarts: microseconds
of the wall clock, kept above the last one used and above what nginx holds.
"""

from __future__ import annotations

import logging
import os
import pathlib
import re
import secrets
import time
import urllib.error
import urllib.request

from edgeagent import dynamic
from edgeagent.files import write_atomically

log = logging.getLogger(__name__)

TOKEN_FILE = "control.token"
STATE_FILE = "state.txt"
CERTS_DIR = "certs"
CONTROL_PATH = "/edgeagent/dynamic"
REQUESTS_PATH = "/edgeagent/requests"  # lua/edgeagent_requests.lua, request_counts.py
# A scraper's own timeout is often 10 s: nginx's counters come in time or count as unavailable.
REQUESTS_TIMEOUT_SECONDS = 2.0
TOKEN_BYTES = 32
TOKEN_FORMAT = re.compile(r"[0-9a-fA-F]{32,}")  # what lua/edgeagent_state.lua accepts
# The agent writes, nginx (not root; in the agent's group) reads at start and reload, nobody
# else. Directories are chmod'ed too: the unit's umask is 0077.
PRIVATE_MODE = 0o640
PRIVATE_DIR_MODE = 0o750
# nginx's answer to a delta before the first full push since it loaded state.txt (it
# restarted, or reloaded onto a newer state.txt): the whole state must be pushed.
NEEDS_FULL_PUSH = 412
# Loopback: never through an http_proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ControlError(Exception):
    """A push nginx refused or did not answer; `status` is its HTTP status (0: none)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"control endpoint answered {status or 'nothing'}: {text}")
        self.status = status


class Control:
    """The dynamic directory and the control endpoint of one nginx."""

    def __init__(self, directory: str, status_listen: str, timeout: float = 10.0) -> None:
        self.dir = pathlib.Path(directory)
        self.url = f"http://{status_listen}{CONTROL_PATH}"
        self.timeout = timeout
        self._last_version = 0
        for directory in (self.dir, self.dir / CERTS_DIR):
            directory.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            os.chmod(directory, PRIVATE_DIR_MODE)
        self.token = self._token()

    def _token(self) -> str:
        path = self.dir / TOKEN_FILE
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        except FileExistsError:
            token = path.read_text().strip()
            if not TOKEN_FORMAT.fullmatch(token):  # nginx would refuse every configuration
                raise ValueError(f"{path} must hold at least 32 hex digits") from None
            return token
        token = secrets.token_hex(TOKEN_BYTES)
        os.fchmod(descriptor, PRIVATE_MODE)  # whatever the umask
        with os.fdopen(descriptor, "w") as file:
            file.write(token + "\n")
            file.flush()
            os.fsync(file.fileno())
        return token

    def next_version(self) -> int:
        self._last_version = max(self._last_version + 1, time.time_ns() // 1000)
        return self._last_version

    # Files

    def write_certificates(self, state: dynamic.State) -> None:
        """Write each pair whose file differs (the static ssl_certificate lines name them)."""
        for key, pem in state.certificates.items():
            path = self.dir / CERTS_DIR / f"{key}.pem"
            try:
                if path.read_bytes() == pem:
                    continue
            except FileNotFoundError:
                pass
            write_atomically(path, pem, PRIVATE_MODE)

    def remove_certificates_except(self, keep: dynamic.State) -> None:
        """Delete the pairs of Secrets no longer in use (once no generation names them)."""
        for path in (self.dir / CERTS_DIR).glob("*.pem"):
            if path.name[: -len(".pem")] not in keep.certificates:
                path.unlink(missing_ok=True)

    def write_state(self, state: dynamic.State) -> int:
        """state.txt: the backends, hosts and routes of `state`, under a new version
        (returned). A reload loads it (it is newer than the last push), so the route table
        nginx holds already matches the generation it loads, before the agent's full push.
        No key material: a pair a host names is read from its file (`write_certificates`),
        so a fresh nginx serves a route table host's certificate before the first push."""
        version = self.next_version()
        without_certificates = dynamic.State(state.backends, {}, state.hosts, state.routes)
        write_atomically(
            self.dir / STATE_FILE,
            dynamic.encode(without_certificates, version, full=True),
            PRIVATE_MODE,
        )
        return version

    # The endpoint

    def _request(
        self,
        method: str,
        body: bytes | None = None,
        url: str | None = None,
        timeout: float | None = None,
    ) -> str:
        request = urllib.request.Request(url or self.url, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if body is not None:
            request.add_header("Content-Type", "text/plain")
        try:
            with _DIRECT.open(request, timeout=timeout or self.timeout) as response:
                return response.read().decode(errors="replace").strip()
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace").strip()
            raise ControlError(error.code, text[:500]) from None
        except OSError as error:  # URLError, timeouts, refused connections
            raise ControlError(0, str(error)) from None

    def serving_version(self) -> int:
        """The version nginx's shared memory holds."""
        text = self._request("GET")
        try:
            return int(text.removeprefix("version "))
        except ValueError:
            raise ControlError(200, f"unexpected answer {text[:80]!r}") from None

    def push(self, state: dynamic.State, full: bool) -> int:
        """Send `state`; on a version conflict (nginx holds a newer one: its state.txt
        after a restart, or another clock), once more above nginx's. Returns the version."""
        version = self.next_version()
        try:
            self._request("POST", dynamic.encode(state, version, full))
        except ControlError as error:
            if error.status != 409:
                raise
            self._last_version = max(self._last_version, self.serving_version())
            version = self.next_version()
            self._request("POST", dynamic.encode(state, version, full))
        return version

    def request_counts(self) -> str:
        """nginx's request counters, as text (request_counts.parse). Within
        REQUESTS_TIMEOUT_SECONDS, not the pushes' timeout: a scrape of /metrics waits on it."""
        url = self.url.replace(CONTROL_PATH, REQUESTS_PATH)
        return self._request("GET", url=url, timeout=REQUESTS_TIMEOUT_SECONDS)
