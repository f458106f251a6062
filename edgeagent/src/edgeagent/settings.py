"""The settings of `edgeagent run`: one root object, grouped by the component each
group configures, from which the flags are made.

Each group is that component's own settings dataclass (`kube.ConnectionSettings`,
`apply.ApplySettings`, `controller.SyncSettings`, `informer.WatchSettings`,
`status.StatusSettings`, `annotations.Config`), or one below for what the daemon
itself passes on. A field an operator may set carries `options.option(...)` metadata:
its flag, help, metavar, parser and check (options.py). Its default and the docstring
that says why stay with the field. The flags, the config file's keys (the flag names
without the dashes), the parsing and the checks are all generated from those fields, so
a new setting is one field with its metadata, read by its component from the group it
is handed.

The ansible role writes a subset of them into /etc/edgeagent/config.yaml from role
variables of the same names (`edgeagent_<name>`, roles/edgeagent/vars/main.yml);
tests/test_role_settings.py fails when a flag, a role default, its argument spec and
docs/roles.md disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from edgeagent import (
    annotations,
    backends,
    grammar,
    model,
    nodeports,
    options,
    ownership,
    probe,
    render,
)
from edgeagent.apply import ApplySettings
from edgeagent.controller import SyncSettings
from edgeagent.gateway.options import ADDRESS_MODES, GatewayOptions
from edgeagent.informer import WatchSettings
from edgeagent.kube import ConnectionSettings
from edgeagent.options import ConfigError, listen, option, path
from edgeagent.status import StatusSettings

__all__ = ["AgentSettings", "ConfigError", "add_arguments", "flags", "resolve"]

UPSTREAM_MODES = ("static", "dynamic")
# The Lua modules of the dynamic mode, shipped inside the package.
LUA_DIR = str(pathlib.Path(__file__).parent / "lua")


@dataclass(frozen=True)
class ServingSettings:
    """What to serve: the operator's part of `model.Options`."""

    ingress_class: str = field(
        default=model.Options.ingress_class,
        metadata=option(
            "ingress-class",
            "IngressClass name served (default: %(default)s)",
            "NAME",
            check=grammar.dns1123_subdomain,
        ),
    )
    watch_ingress_without_class: bool = field(
        default=model.Options.watch_ingress_without_class,
        metadata=option(
            "watch-ingress-without-class",
            "also serve Ingresses that name no class",
            parse=options.switch,
        ),
    )
    gateway_class: str = field(
        default=GatewayOptions.gateway_class,
        metadata=option(
            "gateway-class",
            "GatewayClass name served (default: %(default)s)",
            "NAME",
            check=grammar.dns1123_subdomain,
        ),
    )
    gateway_controller_name: str = field(
        default=GatewayOptions.controller_name,
        metadata=option(
            "gateway-controller-name",
            "spec.controllerName the served GatewayClass must name (default: %(default)s)",
            "NAME",
            check=grammar.controller_name,
        ),
    )
    gateway_http_port: int = field(
        default=GatewayOptions.http_port,
        metadata=option(
            "gateway-http-port",
            "the Gateway listener port carried to nginx's HTTP listen address (default: "
            "%(default)s)",
            "PORT",
            int,
            check=grammar.port_number,
        ),
    )
    gateway_https_port: int = field(
        default=GatewayOptions.https_port,
        metadata=option(
            "gateway-https-port",
            "the Gateway listener port carried to nginx's HTTPS listen address (default: "
            "%(default)s)",
            "PORT",
            int,
            check=grammar.port_number,
        ),
    )
    gateway_address: tuple[str, ...] = field(
        default=GatewayOptions.addresses,
        metadata=option(
            "gateway-address",
            "IP addresses the Gateway listeners bind, each with nginx's HTTP and HTTPS "
            "ports; a Gateway's spec.addresses may name them (default: every address nginx "
            "listens on)",
            "ADDR[,ADDR]",
            options.addresses,
            grammar.bind_addresses,
        ),
    )
    """Empty: a Gateway's hosts answer wherever nginx listens, as an Ingress's do."""
    gateway_address_mode: str = field(
        default=GatewayOptions.address_mode,
        metadata=option(
            "gateway-address-mode",
            "shared: every Gateway's listeners on every --gateway-address; dedicated: each "
            "Gateway on its own address of them (its spec.addresses, else a free one), "
            "where no Ingress or other Gateway answers (default: %(default)s)",
            "MODE",
            options.one_of(*ADDRESS_MODES),
        ),
    )
    """shared, as before the mode existed: no Gateway's configuration changes."""
    backend_networks: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "backend-networks",
            "CIDRs where pods live: endpoints elsewhere are refused (default: the Nodes' "
            "podCIDRs when they have any, else anywhere; loopback, link-local and the "
            "--publish-status-address VIPs are always refused)",
            "CIDR[,CIDR]",
            options.addresses,
            backends.check_networks,
        ),
    )
    """Empty: the Nodes' podCIDRs, which most clusters set; a cluster whose CNI ignores
    them (pods in other ranges) needs the list."""
    allow_loopback_backends: bool = field(
        default=False,
        metadata=option(
            "allow-loopback-backends",
            "proxy to loopback endpoints too: only for a preview on one machine, never on an "
            "edge (the edge's own status and control endpoints live there)",
            parse=options.switch,
        ),
    )
    backend_mode: str = field(
        default=model.Options.backend_mode,
        metadata=option(
            "backend-mode",
            "endpoints: proxy to the pod IPs of the EndpointSlices (the edge needs routes to "
            "the pod network); nodeport: to the Service's NodePort on the Nodes' InternalIPs "
            "(any CNI); a Service's edgeagent.io/backend-mode annotation overrides it "
            "(default: %(default)s)",
            "MODE",
            options.one_of(*nodeports.BACKEND_MODES),
        ),
    )
    """endpoints, as ingress-nginx: one hop less, and the edge spreads the load itself; an
    edge without routes to the pod network needs nodeport (docs/networking.md)."""
    host_owner: str = field(
        default=model.Options.host_owner,
        metadata=option(
            "host-owner",
            "merge: every namespace's paths on a host are served (as ingress-nginx); "
            "namespace: a host belongs to the namespace of its oldest Ingress, other "
            "namespaces' rules for it are refused (default: %(default)s)",
            "MODE",
            options.one_of(*ownership.MODES),
        ),
    )


@dataclass(frozen=True)
class NginxSettings:
    """How nginx serves: the upstreams mode and what `render.Layout` is made of."""

    upstreams: str = field(
        default="static",
        metadata=option(
            "upstreams",
            "static: peers and certificates in the configuration, every change reloads (plain "
            "nginx); dynamic: peers and certificates pushed to nginx's Lua module without a "
            "reload, which needs libnginx-mod-http-lua (default: %(default)s)",
            "MODE",
            options.one_of(*UPSTREAM_MODES),
        ),
    )
    """static, the default of the agent itself: plain nginx, no Lua module needed."""
    lua_dir: str = field(
        default=LUA_DIR,
        metadata=path(
            "lua-dir",
            "dynamic mode: directory of edgeagent's Lua modules, read by nginx (default: the "
            "package's own)",
            "DIR",
        ),
    )
    listen_http: str = field(
        default="0.0.0.0:80", metadata=listen("listen-http", "nginx HTTP listen address")
    )
    """Every address: the VIP moves between nodes, and nginx must take it wherever it is."""
    listen_https: str = field(
        default="0.0.0.0:443", metadata=listen("listen-https", "nginx HTTPS listen address")
    )
    default_certificate: str = field(
        default="/etc/nginx/tls/default.crt",
        metadata=path(
            "default-certificate", "certificate for hosts without their own (default: %(default)s)"
        ),
    )
    """Where the nginx role puts it."""
    default_key: str = field(
        default="/etc/nginx/tls/default.key",
        metadata=path("default-key", "its key (default: %(default)s)"),
    )
    trusted_proxies: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "trusted-proxies",
            "CIDRs of load balancers in front whose X-Forwarded-For (or PROXY protocol "
            "header) names the client; the client-sent header of anyone else is dropped "
            "(default: none)",
            "CIDR[,CIDR]",
            options.addresses,
            backends.check_networks,
        ),
    )
    """Empty: the TCP peer is the client (LVS-DR and VRRP keep its address), and no client
    can name another address to the backends (ingress-nginx's use-forwarded-headers: false)."""
    proxy_protocol: bool = field(
        default=False,
        metadata=option(
            "proxy-protocol",
            "the listeners expect a PROXY protocol header (v1 or v2) on every connection, and "
            "take the client's address from it when the peer is one of --trusted-proxies",
            parse=options.switch,
        ),
    )
    """Off: only a load balancer that speaks PROXY protocol may connect once it is on."""
    ssl_passthrough_listen: str = field(
        default=render.Layout.ssl_passthrough_listen,
        metadata=listen(
            "ssl-passthrough-listen",
            "with --enable-ssl-passthrough: the loopback address the HTTPS servers listen on "
            "behind the stream module",
        ),
    )
    """ingress-nginx's internal port for the same purpose (`--ssl-passthrough-proxy-port`)."""
    ssl_passthrough_backend_listen: str = field(
        default=render.Layout.ssl_passthrough_backend_listen,
        metadata=listen(
            "ssl-passthrough-backend-listen",
            "with --enable-ssl-passthrough: the loopback address of the stream module's hop "
            "to the passed-through backends",
        ),
    )
    """The port below ingress-nginx's 442: both stay clear of the listeners' 80 and 443."""
    auth_hop_http_listen: str = field(
        default=render.Layout.auth_hop_http_listen,
        metadata=listen(
            "auth-hop-http-listen",
            "the loopback address where an auth-url naming the request's host "
            "(http://$host/...) reaches this edge's servers of that host",
        ),
    )
    """A port of its own, clear of the Kubernetes components' 10248-10259 on a node."""
    auth_hop_https_listen: str = field(
        default=render.Layout.auth_hop_https_listen,
        metadata=listen(
            "auth-hop-https-listen",
            "the same for https://$host/..., over TLS",
        ),
    )
    """The next port."""
    route_table: bool = field(
        default=True,
        metadata=option(
            "route-table",
            "dynamic mode: the hosts that need no nginx directive of their own are routed "
            "from a table pushed to nginx's Lua module, so adding, changing or removing them "
            "needs no reload; false: a server block for every host (default: %(default)s)",
            "BOOL",
            options.boolean,
        ),
    )
    """On: a plain Ingress never reloads nginx (docs/dynamic.md); off renders every host's
    server, as before the table, should its Lua routing be in doubt."""
    listen_ipv6: bool = field(
        default=False,
        metadata=option(
            "listen-ipv6",
            "also listen on every IPv6 address ([::]) at the ports of --listen-http and "
            "--listen-https",
            parse=options.switch,
        ),
    )
    """Off: a node without IPv6 cannot bind [::]; the role turns it on where the node has it."""
    served_by_header: bool = field(
        default=False,
        metadata=option(
            "served-by-header",
            "the main configuration adds X-Edge-Node to every answer (the nginx role's "
            "nginx_served_by_header): the route table's hosts get it too",
            parse=options.switch,
        ),
    )
    """The route table's hosts are answered by a location of the default server, whose own
    add_header (HSTS) keeps the http-level X-Edge-Node from it: rendered there again."""

    @property
    def dynamic(self) -> bool:
        return self.upstreams == "dynamic"


@dataclass(frozen=True)
class DaemonSettings:
    """The agent process itself."""

    health_listen: str = field(
        default="127.0.0.1:10254",
        metadata=listen("health-listen", "the agent's /healthz and /metrics"),
    )
    """Loopback: keepalived's check and the metrics scraper run on the node."""
    log_level: str = field(
        default="info",
        metadata=option(
            "log-level", "debug, info, warning or error (default: %(default)s)", "LEVEL"
        ),
    )
    backend_probe_interval: float = field(
        default=60.0,
        metadata=option(
            "backend-probe-interval",
            "how often to try a TCP connection to a sample of every served Service's endpoints "
            "(edgeagent_backend_unreachable, an Event on the Service) (default: %(default)s s)",
            "SECONDS",
            probe.interval,
        ),
    )
    """A minute: a missing route to the pods is a lasting state (an overlay network, a BGP
    session down), not a blip, and each round costs up to 3 connections per Service."""


@dataclass(frozen=True)
class AgentSettings:
    """Every setting of `edgeagent run`, by the component it configures (each group is
    that component's settings dataclass; its title heads its section of `--help`)."""

    api: ConnectionSettings = field(
        default_factory=ConnectionSettings, metadata={"title": "the Kubernetes API"}
    )
    serving: ServingSettings = field(
        default_factory=ServingSettings, metadata={"title": "what to serve"}
    )
    annotations: annotations.Config = field(
        default_factory=annotations.Config,
        metadata={"title": "ingress-nginx defaults (an Ingress's annotations override them)"},
    )
    status: StatusSettings = field(
        default_factory=StatusSettings, metadata={"title": "Ingress status"}
    )
    apply: ApplySettings = field(
        default_factory=ApplySettings, metadata={"title": "applying a configuration to nginx"}
    )
    nginx: NginxSettings = field(
        default_factory=NginxSettings, metadata={"title": "what nginx serves"}
    )
    daemon: DaemonSettings = field(default_factory=DaemonSettings, metadata={"title": "the agent"})
    sync: SyncSettings = field(default_factory=SyncSettings, metadata={"title": "when to sync"})
    watch: WatchSettings = field(
        default_factory=WatchSettings, metadata={"title": "watching the API"}
    )


GROUPS = dataclasses.fields(AgentSettings)


def _options() -> Iterator[tuple[str, dataclasses.Field]]:
    """(group, field) of every field that is an option, in the order of `--help`."""
    for group in GROUPS:
        for each in dataclasses.fields(group.default_factory):
            if "flag" in each.metadata:
                yield group.name, each


OPTIONS = tuple(_options())


def flags() -> list[str]:
    """Every option's name: `--NAME` on the command line, `NAME:` in the config file."""
    return [each.metadata["flag"] for _, each in OPTIONS]


def _dest(flag: str) -> str:
    return flag.replace("-", "_")


def role_variable(flag: str) -> str:
    """The edgeagent role's variable for a setting (roles/edgeagent/vars/main.yml)."""
    return "edgeagent_" + _dest(flag)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file whose keys are the long option names below (e.g. "
        "`ingress-class: edge`); flags given on the command line win",
    )
    sections = {group.name: parser.add_argument_group(group.metadata["title"]) for group in GROUPS}
    for group, each in OPTIONS:
        options.add_argument(sections[group], each)


def _config_file(path: str) -> dict[str, Any]:
    try:
        with open(path) as file:
            values = yaml.safe_load(file) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must be a mapping of option names to values")
    unknown = sorted(set(values) - set(flags()))
    if unknown:
        raise ConfigError(f"{path}: unknown settings {', '.join(unknown)}")
    return values


def resolve(args: argparse.Namespace) -> AgentSettings:
    """Every setting's value: command line, else config file, else default."""
    from_file = _config_file(args.config) if getattr(args, "config", None) else {}
    groups: dict[str, dict[str, Any]] = {group.name: {} for group in GROUPS}
    for group, each in OPTIONS:
        flag = each.metadata["flag"]
        given = getattr(args, _dest(flag), None)
        raw = given if given is not None else from_file.get(flag)
        if raw is None:
            continue
        try:
            groups[group][each.name] = each.metadata["parse"](raw)
        except (ConfigError, ValueError, TypeError) as error:
            raise ConfigError(f"{flag}: {error}") from error
    settings = AgentSettings(**{g.name: g.default_factory(**groups[g.name]) for g in GROUPS})
    try:
        for group, each in OPTIONS:
            if each.metadata["check"] is not None:
                value = getattr(getattr(settings, group), each.name)
                each.metadata["check"](value, each.metadata["flag"])
    except grammar.Invalid as error:
        raise ConfigError(str(error)) from error
    return settings
