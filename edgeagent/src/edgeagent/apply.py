"""Putting a rendered generation in front of nginx, or refusing to.

The layout is the one of docs/architecture.md: under `nginx_dir`, one immutable
directory per generation (`gen-<hash>/edge.conf`, `gen-<hash>/certs/*.pem` mode 0600)
and the symlink `current` that the live nginx.conf includes. Steps:

1. stage: write the files into `.staging-<hash>-<pid>/`, fsync every file and directory,
   then rename it to `gen-<hash>/`. A generation directory therefore exists only whole;
2. validate: write a shadow of the live main config whose include of `current/edge.conf`
   points at what is to be tested and whose `pid` is private, and run
   `nginx -t -q -e stderr -c shadow`: on the whole candidate, on its delta, or on each of
   its parts (below);
3. activate: point a temporary symlink at the generation and `os.replace()` it over
   `current` (atomic), run the reload command, and poll the status server on loopback
   until it answers the new hash: only then is the generation serving.

Delta validation. At 10,000 Ingresses `nginx -t` on the whole candidate takes over a
second and 350 MB, and the reload that follows parses it all once more. `render` cuts
edge.conf into blocks (the http-level settings, each upstream, the default server, each
host's server) with fingerprints. Once this process has validated a generation and nginx
serves it (the baseline), a candidate whose http block and default server are the
baseline's is validated by `nginx -t` on a small config instead: the http block, the
default server, every server and upstream block whose fingerprint is new, the upstreams
those servers use, and the status server, with the certificate files of the staged
generation. A change of one Ingress costs milliseconds. Why that is sound:

- a block's validity depends only on its own text, on what it inherits (the main
  config and the http block, both the baseline's or the validation is full), on the
  files it loads (a certificate's bytes are part of its server's fingerprint, and every
  validated block loads the staged generation's files), on the upstreams it names
  (those are in the delta), and on the listen sockets (the default server, in the delta,
  declares the options of each address; host servers repeat the same addresses);
- what blocks could clash over is unique by construction: upstream names (one per
  Service port, digest first), server names (one server per host, hosts validated), one
  default server, and no listen options that nginx would call duplicates; and removing a
  block cannot break another (a server names only the upstreams of the same model, which
  render() writes, and the delta is built from them). The one table built from all
  servers, the server-names hash, is sized in the http block, and nginx only warns when
  the whole set does not fit it (a name too long for a bucket is an error, and the delta
  has every new name);
- so the unchanged blocks, valid in the baseline, stay valid next to the new ones, and
  the candidate is valid if the delta is.

Validation in parts. Without a baseline (the first apply of a process, or after a failed
activation) there is no delta, and a fresh node's first sync would parse everything twice:
one full `nginx -t`, then the reload. By the same argument, a candidate of more than
`chunk_servers` host servers is validated in parts instead: each part is `chunk_servers`
host servers with the http block, the default server, the status server and the
upstreams its servers use (`delta_config`), an upstream that no server uses goes with the
last part, and `PARALLEL_VALIDATIONS` parts run at a time. The parts cover every block, so
the candidate counts as validated in full (for `full_validation_interval`). What the
argument takes as unique by construction, and `nginx -t` would refuse only on the whole
file, is checked first in Python (`conflicts`: an upstream name defined twice, two
`default_server` or two sets of socket options for one address); the stream block
(stream.conf) is part of every shadow config.

The argument is checked, not just trusted: the reload is nginx's own parse of the whole
candidate, and nginx keeps the running configuration if it refuses it; the status server
then still answers the old hash, `current` is put back, a full `nginx -t` decides
between "rejected" and "failed", and the next validation is one full `nginx -t`. That
full validation also runs whenever the http block, the default server or the live main
config changed, and at least every `full_validation_interval` seconds of applies.

Failures. On a refused `nginx -t` the candidate becomes `rejected-<hash>/` with the
output in `nginx-t.txt` (and the delta or part it ran on, if it was one), and `current`
never moves; the result names the host servers that nginx -t refuses on their own
(`offenders`, by bisection over the delta's servers or the refused parts' servers), which
the controller quarantines. When the reload command fails or nginx does not confirm in
time, nginx decides:
if its status server still answers the generation it answered before the reload, nginx
did not take the new one and `current` is put back, so that a restart brings back what
serves; if it answers the new one (late), the generation is applied; if it answers
nothing (nginx down or restarting, the bootstrap config), `current` stays on the
candidate, which a restart can load since it passed `nginx -t` as a whole (run now if it
had only passed as a delta or in parts; if refused, `current` is put back). `current` is
therefore never put back under an nginx that runs the new generation, which a
confirmation that fails for another reason (status server unreachable) used to do. One
race remains by design: a reload that takes effect after `confirm_timeout` (a minute; a
10k-Ingress reload takes seconds) finds `current` put back, until the retry of the same
generation swaps it again. SIGKILL at any point leaves `current` on a complete, validated
generation: the only debris are `.staging-*` and `.current-*` entries, removed at the next
apply.

The steps are separate methods so that a mode which applies some changes without a
reload (dynamic upstreams, issue 6) can stage and validate structural changes the same way
and skip `activate` for the rest.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import logging
import os
import pathlib
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from edgeagent import options
from edgeagent.files import fsync_dir, write_atomically
from edgeagent.options import listen, option, path, seconds
from edgeagent.render import (
    DEFAULT_SERVER_BLOCK,
    HTTP_BLOCK,
    STATUS_BLOCK,
    Block,
    Rendered,
    is_private,
)
from edgeagent.render_stream import STREAM_FILE

log = logging.getLogger(__name__)

CURRENT = "current"
GENERATION_PREFIX = "gen-"
REJECTED_PREFIX = "rejected-"
STAGING_PREFIX = ".staging-"
LINK_PREFIX = ".current-"
VALIDATE_DIR = ".validate"
DELTA_FILE = "nginx-t-delta.conf"
# Keys: the agent writes, nginx reads through the agent's group (its master is not root, see
# docs/security.md), nobody else. Directories are chmod'ed too: the unit's umask is 0077.
CERT_MODE = 0o640
FILE_MODE = 0o644
DIR_MODE = 0o755
# nginx -t runs of a validation in parts at a time: the edge nodes have two cores or more.
PARALLEL_VALIDATIONS = 2
PART_PREFIX = "part-"
# Loopback polling must not go through an http_proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class ApplySettings:
    nginx_dir: str = field(
        default="/etc/nginx/edgeagent",
        metadata=path(
            "nginx-dir",
            "directory of the generations and the `current` symlink (default: %(default)s)",
            "DIR",
        ),
    )
    """Where generations and `current` live; the nginx role creates it for the agent."""
    main_conf: str = field(
        default="/etc/nginx/nginx.conf",
        metadata=option(
            "nginx-main-conf",
            "live main nginx config, copied into the shadow config that nginx -t checks "
            "(default: %(default)s)",
            "FILE",
        ),
    )
    """The live main config: the shadow copy used by `nginx -t` is made from it, so the
    candidate is tested with the exact settings it will run under."""
    nginx_binary: str = field(
        default="/usr/sbin/nginx",
        metadata=option("nginx-binary", "nginx binary for nginx -t (default: %(default)s)", "PATH"),
    )
    """Debian's nginx binary (systemd's PATH for services has /usr/sbin, but an explicit
    path does not depend on it)."""
    reload_command: tuple[str, ...] = field(
        default=("systemctl", "reload", "nginx.service"),
        metadata=option(
            "reload-command",
            "command that reloads nginx gracefully (default: %(default)s)",
            "COMMAND",
            options.command,
        ),
    )
    """How to reload nginx gracefully. The edge's polkit rule allows exactly this to the
    edgeagent user, so the agent needs no capability and keeps NoNewPrivileges."""
    status_listen: str = field(
        default="127.0.0.1:10246",
        metadata=listen(
            "status-listen", "nginx's loopback status server, polled to confirm reloads"
        ),
    )
    """The status server of the rendered config, polled to confirm a reload."""
    validate_timeout: float = 120.0
    """`nginx -t` on 10k servers takes about 2 s here; two minutes covers a loaded node and
    still ends a hung test."""
    reload_timeout: float = 60.0
    """How long the reload command may run (systemctl waits for nginx's reload job)."""
    confirm_timeout: float = field(
        default=60.0,
        metadata=seconds(
            "confirm-timeout",
            "how long nginx may take to serve a new generation after the reload command",
        ),
    )
    """How long nginx may take to serve the new generation after the reload command: a
    10k-Ingress reload takes about 2.5 s here, so a minute means it did not happen."""
    keep_generations: int = field(
        default=3,
        metadata=option(
            "keep-generations",
            "old generation directories kept (default: %(default)s)",
            "N",
            options.count,
        ),
    )
    """Generation directories kept besides `current`: the previous one is what a rollback
    or an operator needs; more is history."""
    keep_rejected: int = 3
    """Rejected candidates kept for post-mortem; older ones are removed."""
    full_validation_interval: float = field(
        default=600.0,
        metadata=seconds(
            "full-validation-interval",
            "validate the whole candidate, not just what changed, at least this often; 0: always",
        ),
    )
    """Validate the whole candidate instead of its delta when the last full validation is
    older than this. A safety net for the delta argument (see the module docstring),
    whose failure the reload would reveal anyway; at 10k Ingresses it costs one extra
    second of nginx -t per ten minutes of changes. 0: every validation is full."""
    chunk_servers: int = 1000
    """A candidate without a baseline and with more host servers than this is validated in
    parts of this many (module docstring), `PARALLEL_VALIDATIONS` at a time: nginx's
    upstream lookup is quadratic in the upstreams of one file, so at 10k ten parts took
    0.54 s two at a time against 1.4-1.5 s for the whole (docs/benchmarks.md); much
    smaller parts pay the shared blocks more often (20 parts: 0.62 s)."""


class Outcome(enum.StrEnum):
    UNCHANGED = "unchanged"  # this generation already serves
    APPLIED = "applied"  # swapped, reloaded and confirmed
    REJECTED = "rejected"  # nginx -t refused it
    FAILED = "failed"  # staging, reload or confirmation failed; the old one serves


@dataclass(frozen=True)
class ApplyResult:
    outcome: Outcome
    generation: str
    detail: str = ""
    seconds: float = 0.0
    validation: str = ""
    """"full: why", "chunked: N parts: why", "delta: N of M blocks", or "" when nginx -t
    did not run."""
    steps: dict[str, float] = field(default_factory=dict)
    """Seconds per step that ran: stage, validate, reload (with its confirmation)."""
    offenders: tuple[str, ...] = ()
    """REJECTED by nginx -t: the host server blocks that nginx -t refuses on their own
    (next to the http block, the default server and their upstreams), found by
    bisection; empty when the refusal is not any one server's (see `offenders`)."""


class ApplyError(Exception):
    """A step that failed, with what to report."""


class Refused(ApplyError):
    """nginx -t refused the candidate as a whole: retrying the same one is pointless."""


class Invalid(ApplyError):
    """The validation refused the candidate: nginx -t on it or on a part of it, or the
    whole-file check of a validation in parts (`conflicts`)."""

    def __init__(
        self, output: str, suspects: list[str] | None, delta: pathlib.Path | None = None
    ) -> None:
        super().__init__(output)
        self.suspects = suspects
        """The blocks the offenders can be among (`Applier.offenders`; None: any)."""
        self.delta = delta
        """The part nginx -t refused, which its line numbers refer to; None: the whole."""


@dataclass(frozen=True)
class _Baseline:
    """What a generation this process validated, and saw nginx serve, was made of."""

    fingerprints: dict[str, str]
    main_conf: str
    """The live main config it was validated with."""


@dataclass(frozen=True)
class _Scope:
    """What one validation covers: `blocks` None means the whole candidate, in one
    `nginx -t` or, with `parts`, in one per part (each with the shared blocks)."""

    blocks: list[str] | None
    why: str
    parts: list[list[str]] = field(default_factory=list)

    def describe(self, total: int) -> str:
        if self.parts:
            return f"chunked: {len(self.parts)} parts: {self.why}"
        if self.blocks is None:
            return f"full: {self.why}"
        return f"delta: {len(self.blocks)} of {total} blocks"


# What nginx -t refuses only when it sees every server (ngx_http_add_addresses and the
# upstream list), which parts of a candidate could each pass: found by `conflicts`.
_DEFINITIONS = re.compile(
    r"^[ \t]*(?:upstream[ \t]+([^\s{]+)[ \t]*\{|listen[ \t]+([^;]*);)", re.MULTILINE
)
# The listen parameters that set socket options: nginx takes them once per address.
_SOCKET_OPTIONS = (
    "bind",
    "backlog=",
    "rcvbuf=",
    "sndbuf=",
    "accept_filter=",
    "deferred",
    "ipv6only=",
    "reuseport",
    "so_keepalive=",
    "fastopen=",
    "setfib=",
)


def _socket_address(address: str) -> str:
    """A listen address as nginx compares them: `80`, `*:80` and `0.0.0.0:80` are one."""
    if address.startswith("unix:"):
        return address
    if address.isdigit():
        host, port = "*", address
    elif address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] or "80"
    else:
        host, _, port = address.partition(":")
        port = port or "80"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"{host.lower()}:{port}"
    if ip.version == 6:
        return f"[{ip}]:{port}"
    return f"*:{port}" if ip.packed == bytes(4) else f"{ip}:{port}"


def conflicts(blocks: dict[str, Block]) -> list[str]:
    """What nginx -t on the whole candidate would refuse between blocks that it accepts
    in separate parts: an upstream name defined by two blocks, two `default_server` or two
    sets of socket options (`bind`, `backlog=`...) for one address in two servers. One
    per problem, naming the blocks; render() makes none of them (about 0.06 s at 10k)."""
    seen: dict[str, list[str]] = {}  # problem -> the blocks that have it
    for block_id, block in blocks.items():
        for name, line in _DEFINITIONS.findall(block.text):
            if name:
                problems = [f'duplicate upstream "{name}"']
            else:
                address, *parameters = line.split()
                problems = []
                if "default_server" in parameters or "default" in parameters:
                    problems.append(f"a duplicate default server for {_socket_address(address)}")
                if any(parameter.startswith(_SOCKET_OPTIONS) for parameter in parameters):
                    problems.append(f"duplicate listen options for {_socket_address(address)}")
            for problem in problems:
                ids = seen.setdefault(problem, [])
                if block_id not in ids:  # twice in one block: its part's nginx -t says so
                    ids.append(block_id)
    return [f"{problem} in {' and '.join(ids)}" for problem, ids in seen.items() if len(ids) > 1]


def _linked_if_same(existing: pathlib.Path, path: pathlib.Path, data: bytes) -> bool:
    """Hard-link `path` to `existing` if that holds `data` already (a certificate of the
    live generation): generation files are never modified, and a TLS-heavy edge would
    otherwise write and fsync every certificate again on every change (half a second
    per 1,000 here)."""
    try:
        if existing.stat().st_size != len(data) or existing.read_bytes() != data:
            return False
        os.link(existing, path)
    except OSError:
        return False
    return True


def _safe_relative(path: str) -> pathlib.PurePosixPath:
    relative = pathlib.PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ApplyError(f"refusing to write {path!r} outside the generation directory")
    return relative


class Applier:
    def __init__(self, settings: ApplySettings) -> None:
        self.settings = settings
        self.dir = pathlib.Path(settings.nginx_dir)
        self._baseline: _Baseline | None = None
        self._last_full_validation = float("-inf")
        self._parts_refused = False
        """nginx refused the reload of a candidate validated in parts or as a delta: the
        next validation is one `nginx -t` on the whole candidate."""

    # Reading the live state

    def live_generation(self) -> str | None:
        """The hash `current` points at, or None (bootstrap, missing)."""
        try:
            target = os.readlink(self.dir / CURRENT)
        except OSError:
            return None
        name = pathlib.PurePosixPath(target).name
        return name[len(GENERATION_PREFIX) :] if name.startswith(GENERATION_PREFIX) else None

    def serving_generation(self, timeout: float = 1.0) -> str | None:
        """What nginx's status server answers, or None when it does not."""
        url = f"http://{self.settings.status_listen}/edgeagent/generation"
        try:
            with _DIRECT.open(url, timeout=timeout) as response:
                return response.read().decode().strip()
        except (OSError, ValueError):  # URLError is an OSError
            return None

    # Steps

    def stage(self, rendered: Rendered) -> pathlib.Path:
        """Write the generation directory whole, or find it already written."""
        target = self.dir / f"{GENERATION_PREFIX}{rendered.generation}"
        if pathlib.Path(rendered.output_dir) != target:
            raise ApplyError(f"rendered for {rendered.output_dir}, expected {target}")
        if target.is_dir():
            os.utime(target)  # in use again: the newest for pruning
            return target  # generations are immutable: same hash, same files
        staging = self.dir / f"{STAGING_PREFIX}{rendered.generation}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=DIR_MODE)
        os.chmod(staging, DIR_MODE)  # whatever the umask
        directories = {staging}
        live = self.dir / CURRENT
        for name, data in rendered.files.items():
            relative = _safe_relative(name)
            path = staging / relative
            if path.parent not in directories:
                path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                os.chmod(path.parent, DIR_MODE)
                directories.add(path.parent)
            if not is_private(name):
                write_atomically(path, data, FILE_MODE)
            elif not _linked_if_same(live / relative, path, data):
                write_atomically(path, data, CERT_MODE)
        for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(directory)
        os.rename(staging, target)
        fsync_dir(self.dir)
        return target

    def _main_conf_text(self) -> str:
        return pathlib.Path(self.settings.main_conf).read_text()

    def shadow_config(
        self, generation_dir: pathlib.Path, edge_conf: pathlib.Path | None = None
    ) -> pathlib.Path:
        """The live main config, including `generation_dir`'s edge.conf (or `edge_conf`, a
        part written by `delta_config`, next to which it is written) instead of
        `current/edge.conf`."""
        main = pathlib.Path(self.settings.main_conf)
        text = self._main_conf_text()
        edge_conf = edge_conf or generation_dir / "edge.conf"
        current_include = re.compile(
            r"^(\s*include\s+)" + re.escape(str(self.dir / CURRENT)) + r"/edge\.conf(\s*;)",
            re.MULTILINE,
        )
        text, found = current_include.subn(rf"\g<1>{edge_conf}\g<2>", text)
        if found != 1:
            raise ApplyError(
                f"{main} must include {self.dir / CURRENT}/edge.conf exactly once (found {found})"
            )
        text = self._stream_included(text, generation_dir)
        # Relative includes are relative to the main config's directory, not the shadow's.
        text = re.sub(
            r"^(\s*include\s+)([^/\s;][^\s;]*)(\s*;)",
            lambda m: f"{m[1]}{main.parent / m[2]}{m[3]}",
            text,
            flags=re.MULTILINE,
        )
        private = self._private_dir()
        pid_line = f"pid {private / 'nginx.pid'};"
        text, pids = re.subn(r"^\s*pid\s+[^;]*;", pid_line, text, flags=re.MULTILINE)
        if not pids:
            text = pid_line + "\n" + text
        shadow = (
            private if edge_conf.parent == generation_dir else edge_conf.parent
        ) / "nginx.conf"
        shadow.write_text(text)
        return shadow

    def _stream_included(self, text: str, generation_dir: pathlib.Path) -> str:
        """`text` with its include of `current/stream.conf` pointed at the generation's.
        The nginx role writes it as the glob `stream.con[f]`, which generations of agents
        before TLS passthrough, without the file, match as nothing; a main config without
        the include is refused only when the candidate has stream servers to load."""
        stream_include = re.compile(
            r"^(\s*include\s+)"
            + re.escape(str(self.dir / CURRENT))
            + r"/stream\.con(?:f|\[f\])(\s*;)",
            re.MULTILINE,
        )
        staged = generation_dir / STREAM_FILE
        text, found = stream_include.subn(rf"\g<1>{staged}\g<2>", text)
        if found > 1:
            raise ApplyError(f"{self.settings.main_conf} includes {STREAM_FILE} {found} times")
        if not found and staged.is_file() and b"stream {" in staged.read_bytes():
            raise ApplyError(
                f"{self.settings.main_conf} must include {self.dir / CURRENT}/{STREAM_FILE} "
                "at its top level for --enable-ssl-passthrough (the nginx role's does)"
            )
        return text

    def _private_dir(self, part: str = "") -> pathlib.Path:
        private = self.dir / VALIDATE_DIR
        private.mkdir(mode=0o700, exist_ok=True)
        if part:  # one directory per part validated at the same time as others
            private = private / part
            private.mkdir(mode=0o700, exist_ok=True)
        return private

    def delta_config(
        self, rendered: Rendered, blocks: Iterable[str], part: str = ""
    ) -> pathlib.Path:
        """An edge.conf of the given blocks, the upstreams their servers use, and the http
        block, default server and status server of `rendered`, in edge.conf's order
        (`part`: in a directory of its own)."""
        wanted = {HTTP_BLOCK, DEFAULT_SERVER_BLOCK, STATUS_BLOCK, *blocks}
        for block_id in list(wanted):
            wanted.update(f"upstream {name}" for name in rendered.blocks[block_id].upstreams)
        missing = wanted - rendered.blocks.keys()
        if missing:  # render() writes every upstream a server names; this would be a bug
            raise ApplyError(f"blocks used but not rendered: {', '.join(sorted(missing))}")
        header = (
            f"# delta of generation {rendered.generation}: {len(wanted)} of "
            f"{len(rendered.blocks)} blocks (written by edgeagent for nginx -t)\n"
        )
        text = header + "".join(b.text for i, b in rendered.blocks.items() if i in wanted)
        delta = self._private_dir(part) / "edge.conf"
        delta.write_text(text)
        return delta

    def parts(self, rendered: Rendered) -> list[list[str]]:
        """The blocks of `rendered` that are not shared, in parts of `chunk_servers` host
        servers, every block in one part: an upstream no server uses goes with the last
        (`delta_config` adds the shared blocks and the upstreams a part's servers use).
        [] when one part would be the whole candidate."""
        size = self.settings.chunk_servers
        servers = [
            block_id
            for block_id in rendered.blocks
            if block_id.startswith("server ") and block_id != DEFAULT_SERVER_BLOCK
        ]
        if len(servers) <= size:
            return []
        parts = [servers[start : start + size] for start in range(0, len(servers), size)]
        covered = {HTTP_BLOCK, DEFAULT_SERVER_BLOCK, STATUS_BLOCK, *servers}
        for block_id in (DEFAULT_SERVER_BLOCK, *servers):
            covered.update(f"upstream {name}" for name in rendered.blocks[block_id].upstreams)
        parts[-1] += [block_id for block_id in rendered.blocks if block_id not in covered]
        return parts

    def validate_scope(self, rendered: Rendered, target: pathlib.Path, scope: _Scope) -> None:
        """Validate what `scope` covers of the staged `target`; raise Invalid if refused.

        In parts: `conflicts` first, for what only the whole file shows, then each part
        with the shared blocks (`delta_config`), `PARALLEL_VALIDATIONS` at a time. Every
        part runs, so that the offenders of all refused parts are looked for at once."""
        if not scope.parts:
            try:
                delta = None
                if scope.blocks is not None:
                    delta = self.delta_config(rendered, scope.blocks)
                self.validate(target, delta)
            except ApplyError as error:
                raise Invalid(str(error), scope.blocks, delta) from error
            return
        found = conflicts(rendered.blocks)
        if found:  # a combination of servers: no one object's fault
            raise Invalid("nginx -t would refuse the whole candidate: " + "; ".join(found), [])

        def refusal(numbered: tuple[int, list[str]]) -> tuple[str, pathlib.Path] | None:
            number, blocks = numbered
            delta = self.delta_config(rendered, blocks, f"{PART_PREFIX}{number}")
            try:
                self.validate(target, delta)
            except ApplyError as error:
                return f"{error}\n(part {number} of {len(scope.parts)})", delta
            return None

        with ThreadPoolExecutor(PARALLEL_VALIDATIONS) as pool:
            outcomes = list(pool.map(refusal, enumerate(scope.parts, 1)))
        refused = [(i, outcome) for i, outcome in enumerate(outcomes) if outcome is not None]
        if refused:
            output, delta = refused[0][1]
            suspects = [block_id for i, _ in refused for block_id in scope.parts[i]]
            if len(refused) > 1:
                output += f"; {len(refused)} parts refused, the first one kept"
            raise Invalid(output, suspects, delta)

    def validate(self, generation_dir: pathlib.Path, edge_conf: pathlib.Path | None = None) -> None:
        """Run nginx -t once on the candidate (`edge_conf`: on that part of it instead);
        raise ApplyError with its output if refused."""
        shadow = self.shadow_config(generation_dir, edge_conf)
        command = [self.settings.nginx_binary, "-t", "-q", "-e", "stderr", "-c", str(shadow)]
        # The dynamic mode's init_by_lua skips loading the peers under this variable
        # (lua/edgeagent_state.lua): they cannot make a configuration invalid.
        environment = {**os.environ, "EDGEAGENT_NGINX_TEST": "1"}
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=self.settings.validate_timeout,
                env=environment,
            )
        except subprocess.TimeoutExpired as error:
            raise ApplyError(f"nginx -t timed out after {error.timeout} s") from error
        except OSError as error:
            raise ApplyError(f"cannot run {command[0]}: {error}") from error
        if result.returncode != 0:
            raise ApplyError((result.stderr + result.stdout).strip() or "nginx -t failed")

    def offenders(
        self, rendered: Rendered, target: pathlib.Path, changed: list[str] | None
    ) -> list[str]:
        """The host server blocks of a refused candidate that nginx -t refuses on their own.

        Only blocks new since the baseline can be at fault (`changed`; None: every host
        server, when no baseline applies). A server block is valid or not by its own text,
        its upstreams and its files (module docstring), so halves of the suspects are
        validated as deltas, and a half that passes is cleared whole: a few blocks out
        of thousands cost a few dozen small `nginx -t` runs. Nothing is found when the
        shared blocks alone are refused (the main config, the http block or the default
        server, which no object owns), or when only a combination of servers is refused,
        which the construction of edge.conf rules out (unique names, shared settings in
        the http block); the candidate then stays rejected as a whole.
        """
        suspects = [
            block_id
            for block_id in (rendered.blocks if changed is None else changed)
            if block_id.startswith("server ") and block_id != DEFAULT_SERVER_BLOCK
        ]

        def refused(blocks: list[str]) -> bool:
            try:
                self.validate(target, self.delta_config(rendered, blocks))
            except ApplyError:
                return True
            return False

        def bisect(blocks: list[str]) -> list[str]:
            if not refused(blocks):
                return []
            if len(blocks) == 1:
                return blocks
            half = len(blocks) // 2
            return bisect(blocks[:half]) + bisect(blocks[half:])

        if not suspects or refused([]):
            return []
        return bisect(suspects)

    def validation_scope(self, rendered: Rendered, main_text: str) -> _Scope:
        """The whole candidate, or the blocks that differ from the baseline's (docstring)."""
        baseline = self._baseline
        if baseline is None:
            why = "no generation validated by this process serves yet"
            return _Scope(None, why, [] if self._parts_refused else self.parts(rendered))
        if baseline.main_conf != main_text:
            return _Scope(None, "the main config changed")
        elapsed = time.monotonic() - self._last_full_validation
        if elapsed >= self.settings.full_validation_interval:
            return _Scope(None, "the last full validation is too old")
        known = baseline.fingerprints
        changed = [
            block_id
            for block_id, block in rendered.blocks.items()
            if known.get(block_id) != block.fingerprint
        ]
        for shared, name in ((HTTP_BLOCK, "http block"), (DEFAULT_SERVER_BLOCK, "default server")):
            if shared in changed:
                return _Scope(None, f"the {name} changed")
        return _Scope(changed, "")

    def _point_current(self, target_name: str) -> None:
        link = self.dir / f"{LINK_PREFIX}{os.getpid()}"
        link.unlink(missing_ok=True)
        os.symlink(target_name, link)
        os.replace(link, self.dir / CURRENT)
        fsync_dir(self.dir)

    def reload(self) -> None:
        try:
            result = subprocess.run(
                list(self.settings.reload_command),
                capture_output=True,
                text=True,
                timeout=self.settings.reload_timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ApplyError(f"reload command failed: {error}") from error
        if result.returncode != 0:
            output = (result.stderr + result.stdout).strip()
            raise ApplyError(f"reload command exited {result.returncode}: {output}")

    def confirm(self, generation: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.serving_generation(timeout=min(1.0, timeout))
            if seen == generation:
                return
            time.sleep(0.05)
        raise ApplyError(f"nginx did not serve {generation} within {timeout} s (serves {seen})")

    def activate(self, generation: str, whole_checked: Callable[[], None]) -> None:
        """Swap `current` to the generation, reload, confirm.

        On failure nginx decides what `current` becomes (module docstring):
        `whole_checked()` raises Refused unless the candidate passes nginx -t as a whole.
        """
        try:
            previous = os.readlink(self.dir / CURRENT)
        except OSError:
            previous = None
        before = self.serving_generation()
        self._point_current(f"{GENERATION_PREFIX}{generation}")
        try:
            self.reload()
            self.confirm(generation, self.settings.confirm_timeout)
            return
        except ApplyError as error:
            failure = error
        seen = self.serving_generation()
        if seen == generation:
            log.warning("nginx serves the generation after all", extra={"detail": str(failure)})
            return
        try:
            whole_checked()  # Refused: nginx cannot be running it, nor start with it
            if seen is not None and seen == before:
                raise failure  # nginx still serves what it served: it did not take it
        except ApplyError:
            if previous is not None:
                self._point_current(previous)
            raise
        raise ApplyError(
            f"{failure}; nginx answers {seen or 'nothing'}, so `current` stays on "
            f"{generation}, which nginx -t accepts"
        )

    def reject(
        self, generation_dir: pathlib.Path, output: str, delta: pathlib.Path | None = None
    ) -> pathlib.Path:
        rejected = self.dir / f"{REJECTED_PREFIX}{generation_dir.name[len(GENERATION_PREFIX) :]}"
        shutil.rmtree(rejected, ignore_errors=True)
        os.rename(generation_dir, rejected)
        if delta is not None:  # the file nginx -t read, which its line numbers refer to
            write_atomically(rejected / DELTA_FILE, delta.read_bytes(), FILE_MODE)
            output += f"\n(nginx -t ran on the delta {delta}, kept as {DELTA_FILE})"
        write_atomically(rejected / "nginx-t.txt", output.encode() + b"\n", FILE_MODE)
        fsync_dir(self.dir)
        # Here too, not only after an apply: a state that keeps being refused must not
        # fill the disk with one rejected candidate per change.
        self._prune_rejected()
        return rejected

    # The whole pipeline

    def apply(self, rendered: Rendered) -> ApplyResult:
        started = time.monotonic()
        generation = rendered.generation
        steps: dict[str, float] = {}
        validation = ""

        def result(outcome: Outcome, detail: str = "") -> ApplyResult:
            seconds = time.monotonic() - started
            return ApplyResult(outcome, generation, detail, seconds, validation, steps)

        def timed(step: str, since: float) -> float:
            now = time.monotonic()
            steps[step] = now - since
            return now

        self.remove_debris()
        if self.live_generation() == generation:
            if self.serving_generation() == generation:
                return result(Outcome.UNCHANGED)
            # Swapped by an earlier run that died before its reload took effect.
            try:
                self.reload()
                self.confirm(generation, self.settings.confirm_timeout)
            except ApplyError as error:
                return result(Outcome.FAILED, str(error))
            return result(Outcome.APPLIED)
        try:
            target = self.stage(rendered)
            main_text = self._main_conf_text()
        except (ApplyError, OSError) as error:
            return result(Outcome.FAILED, f"staging failed: {error}")
        now = timed("stage", started)
        scope = self.validation_scope(rendered, main_text)
        validation = scope.describe(len(rendered.blocks))
        try:
            self.validate_scope(rendered, target, scope)
        except Invalid as error:
            offenders = tuple(self.offenders(rendered, target, error.suspects))
            rejected = self.reject(target, str(error), error.delta)
            detail = f"{error} (kept in {rejected})"
            return dataclasses.replace(result(Outcome.REJECTED, detail), offenders=offenders)
        if scope.blocks is None:  # every block checked now, in one file or in parts
            self._last_full_validation = time.monotonic()
        now = timed("validate", now)

        def whole_checked() -> None:
            if scope.blocks is None and not scope.parts:
                return
            try:
                self.validate(target)
            except ApplyError as error:
                raise Refused(f"nginx -t on the whole candidate: {error}") from error

        try:
            self.activate(generation, whole_checked)
        except Refused as error:
            self._baseline = None  # the delta argument failed: validate in full from now on
            self._parts_refused = True
            if self.live_generation() == generation:  # nothing to put back: keep it there
                return result(Outcome.REJECTED, str(error))
            rejected = self.reject(target, str(error))
            return result(Outcome.REJECTED, f"{error} (kept in {rejected})")
        except (ApplyError, OSError) as error:
            self._baseline = None
            return result(Outcome.FAILED, str(error))
        timed("reload", now)
        fingerprints = {block_id: block.fingerprint for block_id, block in rendered.blocks.items()}
        self._baseline = _Baseline(fingerprints, main_text)
        self._parts_refused = False
        self.prune()
        return result(Outcome.APPLIED)

    # Housekeeping

    def remove_debris(self) -> None:
        """Staging directories and temporary links of runs that were killed."""
        for entry in self.dir.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(entry, ignore_errors=True)
        for entry in self.dir.glob(f"{LINK_PREFIX}*"):
            entry.unlink(missing_ok=True)

    def _newest_first(self, prefix: str) -> list[pathlib.Path]:
        entries = [p for p in self.dir.glob(f"{prefix}*") if p.is_dir()]
        return sorted(entries, key=lambda p: p.stat().st_mtime, reverse=True)

    def _prune_rejected(self) -> None:
        for old in self._newest_first(REJECTED_PREFIX)[self.settings.keep_rejected :]:
            shutil.rmtree(old, ignore_errors=True)

    def prune(self) -> None:
        live = self.live_generation()
        generations = [
            p
            for p in self._newest_first(GENERATION_PREFIX)
            if p.name != f"{GENERATION_PREFIX}{live}"
        ]
        for old in generations[self.settings.keep_generations :]:
            shutil.rmtree(old, ignore_errors=True)
        self._prune_rejected()
