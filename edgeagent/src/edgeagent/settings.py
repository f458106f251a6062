"""The settings of `edgeagent run`: one typed field each, from which the flags are made.

Each field of `AgentSettings` carries, in its metadata (`option`), the help of its flag,
its metavar, how a value from the command line or the YAML config file is parsed, and the
check it must pass. Its flag is `--<name with dashes>`, its config file key the same name
without the dashes in front. Defaults that a component owns (`ApplySettings.nginx_dir`,
`SyncSettings.quiet_period`...) are read from there, where their docstrings say why.

The ansible role writes a subset of them into /etc/edgeagent/config.yaml from role
variables of the same names (`edgeagent_<name>`, roles/edgeagent/vars/main.yml);
tests/test_role_settings.py fails when a flag, a role default, its argument spec and
docs/roles.md disagree.

A new setting is one field here; the component that uses it reads it from `AgentSettings`.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from edgeagent import grammar, model, render
from edgeagent.apply import ApplySettings
from edgeagent.controller import SyncSettings
from edgeagent.informer import WatchSettings

UPSTREAM_MODES = ("static", "dynamic")
# The Lua modules of the dynamic mode, shipped inside the package.
LUA_DIR = str(pathlib.Path(__file__).parent / "lua")


class ConfigError(Exception):
    """A setting that cannot be used: exit 2 with the message."""


def _switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"expected true or false, got {value!r}")


def _addresses(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _command(value: Any) -> tuple[str, ...]:
    parts = [str(v) for v in value] if isinstance(value, list) else shlex.split(str(value))
    if not parts:
        raise ConfigError("the reload command is empty")
    return tuple(parts)


def _upstream_mode(value: Any) -> str:
    if value not in UPSTREAM_MODES:
        raise ConfigError(f"expected one of {', '.join(UPSTREAM_MODES)}, got {value!r}")
    return str(value)


def _seconds(value: Any) -> float:
    number = float(value)
    if number < 0:
        raise ConfigError(f"{value!r} is negative")
    return number


def _count(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ConfigError(f"{value!r} must be at least 1")
    return number


def option(
    help: str,
    metavar: str | None = None,
    parse: Callable[[Any], Any] = str,
    check: Callable[[Any, str], Any] | None = None,
) -> dict[str, Any]:
    """A field's metadata: its flag's help (`%(default)s` is replaced by the default) and
    metavar (None: a switch, `store_true`), the parser of a flag's text or a YAML value,
    and a `grammar` check the parsed value must pass."""
    return {"help": help, "metavar": metavar, "parse": parse, "check": check}


def setting(default: Any, *args: Any, **kwargs: Any) -> Any:
    return field(default=default, metadata=option(*args, **kwargs))


def seconds(default: float, help: str) -> Any:
    return setting(default, f"{help} (default: %(default)s s)", "SECONDS", _seconds)


def listen(default: str, help: str) -> Any:
    return setting(default, f"{help} (default: %(default)s)", "ADDR:PORT", check=grammar.listen)


@dataclass(frozen=True)
class AgentSettings:
    # The Kubernetes API (kube.ConnectionSettings)
    kubeconfig: str | None = setting(
        None,
        "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster ServiceAccount)",
        "FILE",
    )
    server: str | None = setting(
        None, "API server URL; with --token-file and --ca-file instead of a kubeconfig", "URL"
    )
    token_file: str | None = setting(
        None, "bearer token file for --server, re-read on every request", "FILE"
    )
    ca_file: str | None = setting(
        None, "CA bundle of the API server for --server (default: the system's)", "FILE"
    )

    # What to serve (model.Options, status.StatusSettings)
    ingress_class: str = setting(
        model.Options.ingress_class,
        "IngressClass name served (default: %(default)s)",
        "NAME",
        check=grammar.dns1123_subdomain,
    )
    watch_ingress_without_class: bool = setting(
        model.Options.watch_ingress_without_class,
        "also serve Ingresses that name no class",
        parse=_switch,
    )
    publish_status_address: tuple[str, ...] = setting(
        (),
        "addresses written into status.loadBalancer.ingress of every Ingress served, e.g. "
        "the VIP (default: none, status publishing off)",
        "ADDR[,ADDR]",
        _addresses,
    )

    # nginx and the local endpoints (apply.ApplySettings, render.Layout, control.Control)
    nginx_dir: str = setting(
        ApplySettings.nginx_dir,
        "directory of the generations and the `current` symlink (default: %(default)s)",
        "DIR",
        check=grammar.file_path,
    )
    nginx_main_conf: str = setting(
        ApplySettings.main_conf,
        "live main nginx config, copied into the shadow config that nginx -t checks "
        "(default: %(default)s)",
        "FILE",
    )
    nginx_binary: str = setting(
        ApplySettings.nginx_binary, "nginx binary for nginx -t (default: %(default)s)", "PATH"
    )
    reload_command: tuple[str, ...] = setting(
        ApplySettings.reload_command,
        "command that reloads nginx gracefully (default: %(default)s)",
        "COMMAND",
        _command,
    )
    upstreams: str = setting(
        "static",
        "static: peers and certificates in the configuration, every change reloads (plain "
        "nginx); dynamic: peers and certificates pushed to nginx's Lua module without a "
        "reload, which needs libnginx-mod-http-lua (default: %(default)s)",
        "MODE",
        _upstream_mode,
    )
    dynamic_verify_interval: float = seconds(
        SyncSettings.verify_interval,
        "dynamic mode: how often to check that nginx holds the last pushed state, and push "
        "it whole if not (after nginx restarted)",
    )
    lua_dir: str = setting(
        LUA_DIR,
        "dynamic mode: directory of edgeagent's Lua modules, read by nginx (default: the "
        "package's own)",
        "DIR",
        check=grammar.file_path,
    )
    listen_http: str = listen("0.0.0.0:80", "nginx HTTP listen address")
    listen_https: str = listen("0.0.0.0:443", "nginx HTTPS listen address")
    status_listen: str = listen(
        render.Layout.status_listen, "nginx's loopback status server, polled to confirm reloads"
    )
    health_listen: str = listen("127.0.0.1:10254", "the agent's /healthz and /metrics")
    default_certificate: str = setting(
        "/etc/nginx/tls/default.crt",
        "certificate for hosts without their own (default: %(default)s)",
        "FILE",
        check=grammar.file_path,
    )
    default_key: str = setting(
        "/etc/nginx/tls/default.key",
        "its key (default: %(default)s)",
        "FILE",
        check=grammar.file_path,
    )

    # Timing (controller.SyncSettings, informer.WatchSettings, apply.ApplySettings)
    sync_quiet_period: float = seconds(
        SyncSettings.quiet_period, "sync once no change came for this long"
    )
    sync_max_delay: float = seconds(
        SyncSettings.max_delay, "sync at the latest this long after the first pending change"
    )
    min_reload_interval: float = seconds(
        SyncSettings.min_reload_interval, "at least this long between reloads"
    )
    watch_timeout: float = seconds(
        WatchSettings.watch_timeout,
        "server-side timeout of a watch request; each draws between this and twice this",
    )
    watch_idle_timeout: float = seconds(
        WatchSettings.idle_timeout, "restart a watch silent for this long"
    )
    request_timeout: float = seconds(WatchSettings.request_timeout, "timeout of a list request")
    confirm_timeout: float = seconds(
        ApplySettings.confirm_timeout,
        "how long nginx may take to serve a new generation after the reload command",
    )
    full_validation_interval: float = seconds(
        ApplySettings.full_validation_interval,
        "validate the whole candidate, not just what changed, at least this often; 0: always",
    )
    keep_generations: int = setting(
        ApplySettings.keep_generations,
        "old generation directories kept (default: %(default)s)",
        "N",
        _count,
    )
    log_level: str = setting(
        "info", "debug, info, warning or error (default: %(default)s)", "LEVEL"
    )


FIELDS = dataclasses.fields(AgentSettings)


def flag_of(name: str) -> str:
    """The long option (and config file key) of a field: `sync_max_delay` -> `sync-max-delay`."""
    return name.replace("_", "-")


def _shown(value: Any) -> str:
    return " ".join(value) if isinstance(value, tuple) else str(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file whose keys are the long option names below (e.g. "
        "`ingress-class: edge`); flags given on the command line win",
    )
    for each in FIELDS:
        meta = each.metadata
        if meta["metavar"] is None:
            parser.add_argument(
                f"--{flag_of(each.name)}", action="store_true", default=None, help=meta["help"]
            )
        else:
            parser.add_argument(
                f"--{flag_of(each.name)}",
                default=None,
                metavar=meta["metavar"],
                help=meta["help"].replace("%(default)s", _shown(each.default)),
            )


def _config_file(path: str) -> dict[str, Any]:
    try:
        with open(path) as file:
            values = yaml.safe_load(file) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must be a mapping of option names to values")
    unknown = sorted(set(values) - {flag_of(each.name) for each in FIELDS})
    if unknown:
        raise ConfigError(f"{path}: unknown settings {', '.join(unknown)}")
    return values


def resolve(args: argparse.Namespace) -> AgentSettings:
    """Every setting's value: command line, else config file, else default."""
    from_file = _config_file(args.config) if getattr(args, "config", None) else {}
    values: dict[str, Any] = {}
    for each in FIELDS:
        name = flag_of(each.name)
        given = getattr(args, each.name, None)
        raw = given if given is not None else from_file.get(name)
        if raw is None:
            continue
        try:
            values[each.name] = each.metadata["parse"](raw)
        except (ConfigError, ValueError, TypeError) as error:
            raise ConfigError(f"{name}: {error}") from error
    settings = AgentSettings(**values)
    try:
        for each in FIELDS:
            if each.metadata["check"] is not None:
                each.metadata["check"](getattr(settings, each.name), flag_of(each.name))
    except grammar.Invalid as error:
        raise ConfigError(str(error)) from error
    return settings
