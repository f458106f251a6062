"""`edgeagent run`: the daemon on each edge node.

Threads: one informer per kind (informer.py) fills the cache; the controller
(controller.py) turns it into nginx configuration; the status publisher and the event
recorder talk back to the API on their own threads; the health server answers /healthz
and /metrics. The main thread handles signals and pings systemd's watchdog.

Settings come from flags or from `--config FILE`, a YAML mapping whose keys are the long
flag names without dashes in front (`ingress-class: edge`, `publish-status-address:
[198.51.100.100]`); the ansible role writes /etc/edgeagent/config.yaml. A flag given on
the command line wins over the file; the file wins over the defaults. Unknown keys are an
error, so a typo never silently falls back to a default.

systemd: READY=1 is sent after the first sync attempt. Normally that is the first
configuration applied and confirmed; if the very first candidate is rejected, READY=1 is
sent anyway with a STATUS line saying so (nginx keeps serving what it had, and a unit
that never became ready would only be restarted in a loop), while /healthz stays 503
until a configuration is applied. The unit needs a TimeoutStartSec long enough for the
first list and sync, as the API may be slow at boot.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
import yaml

from edgeagent import annotations, grammar, informer, kube, logs, model, render, systemd
from edgeagent.apply import Applier, ApplyResult, ApplySettings, Outcome
from edgeagent.cache import Cache
from edgeagent.control import Control
from edgeagent.controller import Controller, SyncSettings
from edgeagent.events import EventRecorder
from edgeagent.health import HealthServer, HealthState
from edgeagent.informer import Informer, WatchSettings
from edgeagent.metrics import Metrics
from edgeagent.status import StatusPublisher, StatusSettings

log = logging.getLogger(__name__)

HEALTH_LISTEN = "127.0.0.1:10254"
DEFAULT_CERTIFICATE = "/etc/nginx/tls/default.crt"
DEFAULT_KEY = "/etc/nginx/tls/default.key"
LISTEN_HTTP = "0.0.0.0:80"
LISTEN_HTTPS = "0.0.0.0:443"


UPSTREAM_MODES = ("static", "dynamic")
# The Lua modules of the dynamic mode, shipped inside the package.
LUA_DIR = str(pathlib.Path(__file__).parent / "lua")
DYNAMIC_DIR = "dynamic"


class ConfigError(Exception):
    """A setting that cannot be used: exit 2 with the message."""


def _flag(value: Any) -> bool:
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


def _positive(value: Any) -> float:
    number = float(value)
    if number < 0:
        raise ConfigError(f"{value!r} is negative")
    return number


def _count(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ConfigError(f"{value!r} must be at least 1")
    return number


@dataclass(frozen=True)
class Setting:
    """One option: its flag, default, parser (for flag text and YAML values) and help."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str
    metavar: str | None = None
    is_flag: bool = False

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


def _settings() -> list[Setting]:
    apply, sync, watch = ApplySettings, SyncSettings, WatchSettings
    return [
        Setting(
            "kubeconfig",
            None,
            str,
            "kubeconfig file (default: $KUBECONFIG, "
            "~/.kube/config, or the in-cluster ServiceAccount)",
            "FILE",
        ),
        Setting(
            "server",
            None,
            str,
            "API server URL; with --token-file and --ca-file instead of a kubeconfig",
            "URL",
        ),
        Setting(
            "token-file",
            None,
            str,
            "bearer token file for --server, re-read on every request",
            "FILE",
        ),
        Setting(
            "ca-file",
            None,
            str,
            "CA bundle of the API server for --server (default: the system's)",
            "FILE",
        ),
        Setting(
            "ingress-class",
            model.Options.ingress_class,
            str,
            "IngressClass name served (default: %(default)s)",
            "NAME",
        ),
        Setting(
            "watch-ingress-without-class",
            False,
            _flag,
            "also serve Ingresses that name no class",
            is_flag=True,
        ),
        *(
            Setting(
                flag.name,
                getattr(annotations.Config(), flag.attribute),
                flag.parse,
                f"{flag.help} (default: %(default)s; ingress-nginx's)",
                flag.metavar,
            )
            for flag in annotations.config.FLAGS
        ),
        Setting(
            "publish-status-address",
            (),
            _addresses,
            "addresses written into status.loadBalancer.ingress of every Ingress "
            "served, e.g. the VIP (default: none, status publishing off)",
            "ADDR[,ADDR]",
        ),
        Setting(
            "nginx-dir",
            apply.nginx_dir,
            str,
            "directory of the generations and the `current` symlink (default: %(default)s)",
            "DIR",
        ),
        Setting(
            "nginx-main-conf",
            apply.main_conf,
            str,
            "live main nginx config, copied into the shadow config that nginx -t "
            "checks (default: %(default)s)",
            "FILE",
        ),
        Setting(
            "nginx-binary",
            apply.nginx_binary,
            str,
            "nginx binary for nginx -t (default: %(default)s)",
            "PATH",
        ),
        Setting(
            "reload-command",
            " ".join(apply.reload_command),
            _command,
            "command that reloads nginx gracefully (default: %(default)s)",
            "COMMAND",
        ),
        Setting(
            "upstreams",
            "static",
            _upstream_mode,
            "static: peers and certificates in the configuration, every change reloads "
            "(plain nginx); dynamic: peers and certificates pushed to nginx's Lua module "
            "without a reload, which needs libnginx-mod-http-lua (default: %(default)s)",
            "MODE",
        ),
        Setting(
            "dynamic-verify-interval",
            sync.verify_interval,
            _positive,
            "dynamic mode: how often to check that nginx holds the last pushed state, and "
            "push it whole if not (after nginx restarted) (default: %(default)s s)",
            "SECONDS",
        ),
        Setting(
            "lua-dir",
            LUA_DIR,
            str,
            "dynamic mode: directory of edgeagent's Lua modules, read by nginx "
            "(default: the package's own)",
            "DIR",
        ),
        Setting(
            "listen-http",
            LISTEN_HTTP,
            str,
            "nginx HTTP listen address (default: %(default)s)",
            "ADDR:PORT",
        ),
        Setting(
            "listen-https",
            LISTEN_HTTPS,
            str,
            "nginx HTTPS listen address (default: %(default)s)",
            "ADDR:PORT",
        ),
        Setting(
            "status-listen",
            render.Layout.status_listen,
            str,
            "nginx's loopback status server, polled to confirm reloads (default: %(default)s)",
            "ADDR:PORT",
        ),
        Setting(
            "health-listen",
            HEALTH_LISTEN,
            str,
            "the agent's /healthz and /metrics (default: %(default)s)",
            "ADDR:PORT",
        ),
        Setting(
            "default-certificate",
            DEFAULT_CERTIFICATE,
            str,
            "certificate for hosts without their own (default: %(default)s)",
            "FILE",
        ),
        Setting("default-key", DEFAULT_KEY, str, "its key (default: %(default)s)", "FILE"),
        Setting(
            "sync-quiet-period",
            sync.quiet_period,
            _positive,
            "sync once no change came for this long (default: %(default)s s)",
            "SECONDS",
        ),
        Setting(
            "sync-max-delay",
            sync.max_delay,
            _positive,
            "sync at the latest this long after the first pending change (default: %(default)s s)",
            "SECONDS",
        ),
        Setting(
            "min-reload-interval",
            sync.min_reload_interval,
            _positive,
            "at least this long between reloads (default: %(default)s s)",
            "SECONDS",
        ),
        Setting(
            "watch-timeout",
            watch.watch_timeout,
            _positive,
            "server-side timeout of a watch request; each draws between this and "
            "twice this (default: %(default)s s)",
            "SECONDS",
        ),
        Setting(
            "watch-idle-timeout",
            watch.idle_timeout,
            _positive,
            "restart a watch silent for this long (default: %(default)s s)",
            "SECONDS",
        ),
        Setting(
            "request-timeout",
            watch.request_timeout,
            _positive,
            "timeout of a list request (default: %(default)s s)",
            "SECONDS",
        ),
        Setting(
            "confirm-timeout",
            apply.confirm_timeout,
            _positive,
            "how long nginx may take to serve a new generation after the reload "
            "command (default: %(default)s s)",
            "SECONDS",
        ),
        Setting(
            "full-validation-interval",
            apply.full_validation_interval,
            _positive,
            "validate the whole candidate, not just what changed, at least this often; "
            "0: always (default: %(default)s s)",
            "SECONDS",
        ),
        Setting(
            "keep-generations",
            apply.keep_generations,
            _count,
            "old generation directories kept (default: %(default)s)",
            "N",
        ),
        Setting(
            "log-level",
            "info",
            str,
            "debug, info, warning or error (default: %(default)s)",
            "LEVEL",
        ),
    ]


SETTINGS = _settings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file whose keys are the long option names below (e.g. "
        "`ingress-class: edge`); flags given on the command line win",
    )
    for setting in SETTINGS:
        if setting.is_flag:
            parser.add_argument(
                f"--{setting.name}", action="store_true", default=None, help=setting.help
            )
        else:
            parser.add_argument(
                f"--{setting.name}",
                default=None,
                metavar=setting.metavar,
                help=setting.help.replace("%(default)s", str(setting.default)),
            )


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting's value: command line, else config file, else default."""
    from_file: dict[str, Any] = {}
    if getattr(args, "config", None):
        try:
            with open(args.config) as file:
                from_file = yaml.safe_load(file) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read {args.config}: {error}") from error
        if not isinstance(from_file, dict):
            raise ConfigError(f"{args.config} must be a mapping of option names to values")
        known = {setting.name for setting in SETTINGS}
        unknown = sorted(set(from_file) - known)
        if unknown:
            raise ConfigError(f"{args.config}: unknown settings {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        given = getattr(args, setting.dest, None)
        raw = given if given is not None else from_file.get(setting.name)
        if raw is None:
            values[setting.dest] = setting.default
            continue
        try:
            values[setting.dest] = setting.parse(raw)
        except (ConfigError, ValueError, TypeError) as error:
            raise ConfigError(f"{setting.name}: {error}") from error
    checks = {
        grammar.listen: ("listen_http", "listen_https", "status_listen", "health_listen"),
        grammar.file_path: ("nginx_dir", "default_certificate", "default_key", "lua_dir"),
        grammar.dns1123_subdomain: ("ingress_class",),
    }
    try:
        for check, names in checks.items():
            for name in names:
                check(values[name], name.replace("_", "-"))
    except grammar.Invalid as error:
        raise ConfigError(str(error)) from error
    return values


@dataclass
class Agent:
    """Every part of a running agent, built from the resolved settings."""

    values: dict[str, Any]

    def __post_init__(self) -> None:
        v = self.values
        self.stop = threading.Event()
        self.metrics = Metrics()
        self.cache = Cache()
        client = kube.api_client(
            kube.ConnectionSettings(v["kubeconfig"], v["server"], v["token_file"], v["ca_file"])
        )
        watch = WatchSettings(
            watch_timeout=v["watch_timeout"],
            idle_timeout=v["watch_idle_timeout"],
            request_timeout=v["request_timeout"],
        )
        self.informers = [
            Informer(resource, self.cache, watch, self.metrics, self.stop)
            for resource in informer.resources(client)
        ]
        self.health = HealthState(self.watch_report)
        self.health_server = HealthServer(v["health_listen"], self.health, self.metrics)
        applier = Applier(
            ApplySettings(
                nginx_dir=v["nginx_dir"],
                main_conf=v["nginx_main_conf"],
                nginx_binary=v["nginx_binary"],
                reload_command=v["reload_command"],
                status_listen=v["status_listen"],
                confirm_timeout=v["confirm_timeout"],
                full_validation_interval=v["full_validation_interval"],
                keep_generations=v["keep_generations"],
            )
        )
        self.status = StatusPublisher(
            client,
            self.cache,
            StatusSettings(addresses=v["publish_status_address"]),
            self.metrics,
            self.stop,
        )
        self.events = EventRecorder(client, self.cache, self.metrics, self.stop)
        dynamic = v["upstreams"] == "dynamic"
        dynamic_dir = f"{v['nginx_dir'].rstrip('/')}/{DYNAMIC_DIR}"
        layout = render.Layout(
            listen_http=v["listen_http"],
            listen_https=v["listen_https"],
            output_dir=f"{v['nginx_dir'].rstrip('/')}/gen-{render.GENERATION_PLACEHOLDER}",
            default_certificate=v["default_certificate"],
            default_key=v["default_key"],
            status_listen=v["status_listen"],
            dynamic_dir=dynamic_dir if dynamic else None,
            lua_dir=v["lua_dir"] if dynamic else None,
        )
        control = Control(dynamic_dir, v["status_listen"]) if dynamic else None
        self.controller = Controller(
            self.cache,
            model.Options(
                ingress_class=v["ingress_class"],
                watch_ingress_without_class=v["watch_ingress_without_class"],
                upstreams_without_endpoints=dynamic,
                annotations=annotations.config.from_values(v),
            ),
            layout,
            applier,
            self.status,
            self.events,
            self.metrics,
            self.health,
            SyncSettings(
                quiet_period=v["sync_quiet_period"],
                max_delay=v["sync_max_delay"],
                min_reload_interval=v["min_reload_interval"],
                verify_interval=v["dynamic_verify_interval"],
            ),
            self.stop,
            on_first_sync=self.first_sync,
            control=control,
        )

    def watch_report(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            i.resource.name: {
                "synced": i.resource_version is not None,
                "resource_version": i.resource_version,
                "seconds_since_contact": None
                if i.last_contact is None
                else round(now - i.last_contact, 3),
                "last_error": i.last_error,
            }
            for i in self.informers
        }

    def first_sync(self, result: ApplyResult) -> None:
        if result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
            systemd.notify("READY=1", f"STATUS=serving generation {result.generation}")
        else:
            systemd.notify(
                "READY=1", f"STATUS=first sync {result.outcome.value}: {result.detail[:200]}"
            )

    def shutdown(self, *_: Any) -> None:
        self.stop.set()
        self.cache.wake()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.shutdown)
        signal.signal(signal.SIGINT, self.shutdown)
        self.health_server.start()
        self.events.start()
        self.status.start()
        for each in self.informers:
            each.start()
        self.controller.start()
        log.info("started", extra={"health": self.values["health_listen"]})
        interval = systemd.watchdog_interval()
        threads = [i.thread for i in self.informers] + [self.controller.thread]
        while not self.stop.wait(interval or 1.0):
            if interval and all(thread.is_alive() for thread in threads):
                systemd.notify("WATCHDOG=1")
        systemd.notify("STOPPING=1")
        for each in self.informers:
            each.interrupt()
        self.events.stop()
        log.info("stopped")  # the health server's thread ends with the process
        return 0


def main(args: argparse.Namespace) -> int:
    try:
        values = resolve(args)
    except ConfigError as error:
        print(f"edgeagent: error: {error}", file=sys.stderr)
        return 2
    logs.setup(values["log_level"])
    try:
        agent = Agent(values)
    except (OSError, ValueError, kubernetes.config.ConfigException) as error:
        log.error("cannot start", extra={"error": str(error)})
        return 2
    return agent.run()
