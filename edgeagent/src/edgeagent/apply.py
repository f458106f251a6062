"""Putting a rendered generation in front of nginx, or refusing to.

The layout is the one of docs/architecture.md: under `nginx_dir`, one immutable
directory per generation (`gen-<hash>/edge.conf`, `gen-<hash>/certs/*.pem` mode 0600)
and the symlink `current` that the live nginx.conf includes. Steps:

1. stage: write the files into `.staging-<hash>-<pid>/`, fsync every file and directory,
   then rename it to `gen-<hash>/`. A generation directory therefore exists only whole;
2. validate: write a shadow of the live main config whose include of `current/edge.conf`
   points at the new directory and whose `pid` is private, and run
   `nginx -t -q -e stderr -c shadow` once, on the candidate as a whole;
3. activate: point a temporary symlink at the generation and `os.replace()` it over
   `current` (atomic), run the reload command, and poll the status server on loopback
   until it answers the new hash: only then is the generation serving.

On a failed `nginx -t` the candidate becomes `rejected-<hash>/` with the output in
`nginx-t.txt`, and `current` never moves. On a failed reload or an unconfirmed one,
`current` is put back on the previous generation, so that an nginx restart brings back
what was known to serve. SIGKILL at any point leaves `current` on a complete generation:
the only debris are `.staging-*` and `.current-*` entries, removed at the next apply.

The steps are separate methods so that a mode which applies some changes without a
reload (dynamic upstreams, issue 6) can stage and validate structural changes the same way
and skip `activate` for the rest.
"""

from __future__ import annotations

import enum
import logging
import os
import pathlib
import re
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass

from edgeagent.render import Rendered

log = logging.getLogger(__name__)

CURRENT = "current"
GENERATION_PREFIX = "gen-"
REJECTED_PREFIX = "rejected-"
STAGING_PREFIX = ".staging-"
LINK_PREFIX = ".current-"
VALIDATE_DIR = ".validate"
CERT_MODE = 0o600
FILE_MODE = 0o644
DIR_MODE = 0o755
# Loopback polling must not go through an http_proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class ApplySettings:
    nginx_dir: str = "/etc/nginx/edgeagent"
    """Where generations and `current` live; the nginx role creates it for the agent."""
    main_conf: str = "/etc/nginx/nginx.conf"
    """The live main config: the shadow copy used by `nginx -t` is made from it, so the
    candidate is tested with the exact settings it will run under."""
    nginx_binary: str = "/usr/sbin/nginx"
    """Debian's nginx binary (systemd's PATH for services has /usr/sbin, but an explicit
    path does not depend on it)."""
    reload_command: tuple[str, ...] = ("systemctl", "reload", "nginx.service")
    """How to reload nginx gracefully. The edge's polkit rule allows exactly this to the
    edgeagent user, so the agent needs no capability and keeps NoNewPrivileges."""
    status_listen: str = "127.0.0.1:10246"
    """The status server of the rendered config, polled to confirm a reload."""
    validate_timeout: float = 120.0
    """`nginx -t` on 10k servers takes about 2 s here; two minutes covers a loaded node and
    still ends a hung test."""
    reload_timeout: float = 60.0
    """How long the reload command may run (systemctl waits for nginx's reload job)."""
    confirm_timeout: float = 60.0
    """How long nginx may take to serve the new generation after the reload command: a
    10k-Ingress reload takes about 2.5 s here, so a minute means it did not happen."""
    keep_generations: int = 3
    """Generation directories kept besides `current`: the previous one is what a rollback
    or an operator needs; more is history."""
    keep_rejected: int = 3
    """Rejected candidates kept for post-mortem; older ones are removed."""


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


class ApplyError(Exception):
    """A step that failed, with what to report."""


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: pathlib.Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.chmod(path, mode)  # whatever the umask


def _safe_relative(path: str) -> pathlib.PurePosixPath:
    relative = pathlib.PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ApplyError(f"refusing to write {path!r} outside the generation directory")
    return relative


class Applier:
    def __init__(self, settings: ApplySettings) -> None:
        self.settings = settings
        self.dir = pathlib.Path(settings.nginx_dir)

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
        directories = {staging}
        for name, data in rendered.files.items():
            relative = _safe_relative(name)
            path = staging / relative
            if path.parent not in directories:
                path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                directories.add(path.parent)
            _write(path, data, CERT_MODE if relative.parts[0] == "certs" else FILE_MODE)
        for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
            _fsync_dir(directory)
        os.rename(staging, target)
        _fsync_dir(self.dir)
        return target

    def shadow_config(self, generation_dir: pathlib.Path) -> pathlib.Path:
        """The live main config, including `generation_dir` instead of `current`."""
        main = pathlib.Path(self.settings.main_conf)
        text = main.read_text()
        current_include = re.compile(
            r"^(\s*include\s+)" + re.escape(str(self.dir / CURRENT)) + r"/edge\.conf(\s*;)",
            re.MULTILINE,
        )
        text, found = current_include.subn(rf"\g<1>{generation_dir}/edge.conf\g<2>", text)
        if found != 1:
            raise ApplyError(
                f"{main} must include {self.dir / CURRENT}/edge.conf exactly once (found {found})"
            )
        # Relative includes are relative to the main config's directory, not the shadow's.
        text = re.sub(
            r"^(\s*include\s+)([^/\s;][^\s;]*)(\s*;)",
            lambda m: f"{m[1]}{main.parent / m[2]}{m[3]}",
            text,
            flags=re.MULTILINE,
        )
        private = self.dir / VALIDATE_DIR
        private.mkdir(mode=0o700, exist_ok=True)
        pid_line = f"pid {private / 'nginx.pid'};"
        text, pids = re.subn(r"^\s*pid\s+[^;]*;", pid_line, text, flags=re.MULTILINE)
        if not pids:
            text = pid_line + "\n" + text
        shadow = private / "nginx.conf"
        shadow.write_text(text)
        return shadow

    def validate(self, generation_dir: pathlib.Path) -> None:
        """Run nginx -t once on the candidate; raise ApplyError with its output if refused."""
        shadow = self.shadow_config(generation_dir)
        command = [self.settings.nginx_binary, "-t", "-q", "-e", "stderr", "-c", str(shadow)]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=self.settings.validate_timeout
            )
        except subprocess.TimeoutExpired as error:
            raise ApplyError(f"nginx -t timed out after {error.timeout} s") from error
        except OSError as error:
            raise ApplyError(f"cannot run {command[0]}: {error}") from error
        if result.returncode != 0:
            raise ApplyError((result.stderr + result.stdout).strip() or "nginx -t failed")

    def _point_current(self, target_name: str) -> None:
        link = self.dir / f"{LINK_PREFIX}{os.getpid()}"
        link.unlink(missing_ok=True)
        os.symlink(target_name, link)
        os.replace(link, self.dir / CURRENT)
        _fsync_dir(self.dir)

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

    def activate(self, generation: str) -> None:
        """Swap `current` to the generation, reload, confirm; roll `current` back on failure."""
        try:
            previous = os.readlink(self.dir / CURRENT)
        except OSError:
            previous = None
        self._point_current(f"{GENERATION_PREFIX}{generation}")
        try:
            self.reload()
            self.confirm(generation, self.settings.confirm_timeout)
        except ApplyError:
            if previous is not None:
                self._point_current(previous)
            raise

    def reject(self, generation_dir: pathlib.Path, output: str) -> pathlib.Path:
        rejected = self.dir / f"{REJECTED_PREFIX}{generation_dir.name[len(GENERATION_PREFIX) :]}"
        shutil.rmtree(rejected, ignore_errors=True)
        os.rename(generation_dir, rejected)
        _write(rejected / "nginx-t.txt", output.encode() + b"\n", FILE_MODE)
        _fsync_dir(self.dir)
        return rejected

    # The whole pipeline

    def apply(self, rendered: Rendered) -> ApplyResult:
        started = time.monotonic()
        generation = rendered.generation

        def result(outcome: Outcome, detail: str = "") -> ApplyResult:
            return ApplyResult(outcome, generation, detail, time.monotonic() - started)

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
        except (ApplyError, OSError) as error:
            return result(Outcome.FAILED, f"staging failed: {error}")
        try:
            self.validate(target)
        except ApplyError as error:
            rejected = self.reject(target, str(error))
            return result(Outcome.REJECTED, f"{error} (kept in {rejected})")
        try:
            self.activate(generation)
        except (ApplyError, OSError) as error:
            return result(Outcome.FAILED, str(error))
        self.prune()
        return result(Outcome.APPLIED)

    # Housekeeping

    def remove_debris(self) -> None:
        """Staging directories and temporary links of runs that were killed."""
        for entry in self.dir.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(entry, ignore_errors=True)
        for entry in self.dir.glob(f"{LINK_PREFIX}*"):
            entry.unlink(missing_ok=True)

    def prune(self) -> None:
        live = self.live_generation()

        def newest_first(prefix: str) -> list[pathlib.Path]:
            entries = [p for p in self.dir.glob(f"{prefix}*") if p.is_dir()]
            return sorted(entries, key=lambda p: p.stat().st_mtime, reverse=True)

        generations = [
            p for p in newest_first(GENERATION_PREFIX) if p.name != f"{GENERATION_PREFIX}{live}"
        ]
        for old in generations[self.settings.keep_generations :]:
            shutil.rmtree(old, ignore_errors=True)
        for old in newest_first(REJECTED_PREFIX)[self.settings.keep_rejected :]:
            shutil.rmtree(old, ignore_errors=True)
