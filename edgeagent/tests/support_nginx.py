"""A real nginx on loopback ports for tests, serving what model + render produce.

`render_site` writes a complete standalone configuration (the files `edgeagent render`
writes) for given objects, in the static or the dynamic mode (then with the dynamic
directory the agent would have written: token, state.txt, certificates, and no push, so
nginx serves the state it loads at start); `NginxRunner.start` runs `/usr/sbin/nginx -p DIR -c
nginx.conf` in the foreground and waits until its status server answers with the
generation just written, so a test never races the start or a reload.
"""

import contextlib
import dataclasses
import http.client
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import crossplane
from edgeagent.annotations import balance, extauth, mirror, proxy_rewrites, proxyssl, sslciphers
from edgeagent.control import CONTROL_PATH, Control
from edgeagent.gateway import routing as gateway_routing
from support_http import Backend, Backends, free_ports

from edgeagent import cli, daemon, dynamic, grammar, model, render, settings

NGINX = "/usr/sbin/nginx"
START_SECONDS = 15


@dataclass(frozen=True)
class Ports:
    http: int
    https: int
    status: int

    @classmethod
    def free(cls) -> "Ports":
        return cls(*free_ports(3))


@dataclass
class Site:
    """A rendered standalone configuration: where it is, what it listens on, what it holds."""

    directory: Path
    ports: Ports
    model: model.Model
    rendered: render.Rendered

    @property
    def generation(self) -> str:
        return self.rendered.generation


def layout_for(directory: Path, ports: Ports, dynamic_mode: bool = False) -> render.Layout:
    default = directory / cli.DEFAULT_CERTIFICATE_FILE
    return render.Layout(
        dynamic_dir=str(directory / daemon.DYNAMIC_DIR) if dynamic_mode else None,
        lua_dir=settings.LUA_DIR if dynamic_mode else None,
        listen_http=f"127.0.0.1:{ports.http}",
        listen_https=f"127.0.0.1:{ports.https}",
        output_dir=str(directory),
        default_certificate=str(default),
        default_key=str(default),
        status_listen=f"127.0.0.1:{ports.status}",
    )


def write_rendered(
    directory: Path,
    layout: render.Layout,
    rendered: render.Rendered,
    ssl_passthrough: bool = False,
    escapes_uri: bool = False,
) -> None:
    """`ssl_passthrough`: the model's --enable-ssl-passthrough (the main config includes
    stream.conf); `escapes_uri`: the model's `extauth.escapes_uri` (it loads set-misc)."""
    for relative, data in rendered.files.items():
        mode = cli.PRIVATE_MODE if render.is_private(relative) else cli.PUBLIC_MODE
        cli.write_file(directory / relative, data, mode)
    main = render.render_main(layout, ssl_passthrough, escapes_uri)
    cli.write_file(directory / "nginx.conf", main, cli.PUBLIC_MODE)


def render_site(
    directory: Path,
    inputs: model.Inputs,
    options: model.Options | None = None,
    ports: Ports | None = None,
    default_certificate: model.CertPair | None = None,
    dynamic_mode: bool = False,
    **layout_changes,
) -> Site:
    """Build, render and write everything nginx needs into `directory`; `layout_changes`:
    other `render.Layout` fields than the test layout's."""
    ports = ports or Ports.free()
    layout = dataclasses.replace(layout_for(directory, ports, dynamic_mode), **layout_changes)
    default_path = Path(layout.default_certificate)
    if default_certificate or not default_path.exists():
        pair = default_certificate or cli.self_signed("edgeagent-default")
        cli.write_file(default_path, pair.certificate_pem + pair.key_pem, cli.PRIVATE_MODE)
    options = options or model.Options()
    if dynamic_mode:
        options = dataclasses.replace(options, upstreams_without_endpoints=True, dynamic=True)
    built, _ = gateway_routing.build(model.build(inputs, options), inputs, options)
    rendered = render.render(built, layout)
    if dynamic_mode:
        control = Control(layout.dynamic_dir, layout.status_listen)
        control.write_certificates(dynamic.state_of(built))
        control.write_state(dynamic.state_of(built))
    write_rendered(
        directory,
        layout,
        rendered,
        built.annotations.enable_ssl_passthrough,
        extauth.escapes_uri(built),
    )
    return Site(directory, ports, built, rendered)


def nginx_test(directory: Path) -> subprocess.CompletedProcess:
    """`nginx -t` on a standalone configuration, as `edgeagent render` users run it."""
    return subprocess.run(
        [NGINX, "-t", "-q", "-p", str(directory), "-c", "nginx.conf"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def directives(config_file: Path) -> list[tuple[str, tuple[str, ...], str]]:
    """Every directive nginx would read, with its block context, through includes.

    Each entry is (directive, args, context), context being the enclosing block
    directives joined by '/', e.g. ("proxy_pass", ("http://x",), "http/server/location").
    """
    parsed = crossplane.parse(str(config_file), catch_errors=False, combine=True)
    found = []

    def walk(block: list[dict], context: str) -> None:
        for entry in block:
            found.append((entry["directive"], tuple(entry.get("args", [])), context))
            if "block" in entry:
                inner = f"{context}/{entry['directive']}" if context else entry["directive"]
                walk(entry["block"], inner)

    for config in parsed["config"]:
        walk(config["parsed"], "")
    return found


# Every directive the templates can write, by block context. Anything else in a rendered
# configuration came from the input: an injection.
ALLOWED_DIRECTIVES = {
    "": {
        "load_module",
        "worker_processes",
        "worker_rlimit_nofile",
        "pid",
        "error_log",
        "events",
        "http",
        "stream",
    },
    "events": {"worker_connections"},
    "http": {
        "default_type",
        "server_tokens",
        "access_log",
        "client_body_temp_path",
        "proxy_temp_path",
        "fastcgi_temp_path",
        "uwsgi_temp_path",
        "scgi_temp_path",
        "ssl_protocols",
        "ssl_ciphers",
        "ssl_prefer_server_ciphers",
        "ssl_session_cache",
        "keepalive_timeout",
        "map",
        "server_names_hash_max_size",
        "server_names_hash_bucket_size",
        "proxy_http_version",
        "proxy_set_header",
        "proxy_connect_timeout",
        "proxy_read_timeout",
        "proxy_send_timeout",
        "client_max_body_size",
        "grpc_set_header",
        "grpc_connect_timeout",
        "grpc_read_timeout",
        "grpc_send_timeout",
        "upstream",
        "server",
        "lua_package_path",
        "lua_shared_dict",
        "init_by_lua_block",
        "access_by_lua_block",
        "log_by_lua_block",
        "uninitialized_variable_warn",
        "split_clients",
        "geo",
        "limit_conn_zone",
        "limit_req_zone",
        "set_real_ip_from",
        "real_ip_header",
    },
    "http/map": {"default", "", "https", "~^.+:OPTIONS$", "0", "1", "https:", "https:1"},
    "http/geo": {"default"},
    "http/upstream": {"server", "keepalive", "balancer_by_lua_block", "hash"},
    "http/server": {
        "listen",
        "server_name",
        "set",  # $edgeagent_server_host only (below)
        "ssl_certificate",
        "ssl_certificate_key",
        "add_header",
        "location",
        "access_log",
        "default_type",
        "ssl_certificate_by_lua_block",
        "if",
        "return",
        "ssl_client_certificate",
        "ssl_verify_client",
        "ssl_verify_depth",
        "ssl_crl",
        "error_page",
        "ssl_ciphers",
        "ssl_prefer_server_ciphers",
        "ssl_reject_handshake",
        "server_rewrite_by_lua_block",
        "log_by_lua_block",
    },
    "http/server/location": {
        "set_escape_uri",
        "allow",
        "deny",
        "set",
        "client_body_buffer_size",
        "content_by_lua_block",
        "proxy_pass",
        "return",
        "if",
        "client_max_body_size",
        "proxy_connect_timeout",
        "proxy_read_timeout",
        "proxy_send_timeout",
        "proxy_buffering",
        "proxy_request_buffering",
        "proxy_buffer_size",
        "proxy_buffers",
        "proxy_busy_buffers_size",
        "proxy_max_temp_file_size",
        "proxy_http_version",
        "proxy_redirect",
        "proxy_cookie_domain",
        "proxy_cookie_path",
        "rewrite",
        "access_log",
        "default_type",
        "proxy_set_header",
        "grpc_pass",
        "grpc_connect_timeout",
        "grpc_read_timeout",
        "grpc_send_timeout",
        "proxy_next_upstream",
        "proxy_next_upstream_tries",
        "proxy_next_upstream_timeout",
        "grpc_next_upstream",
        "grpc_next_upstream_tries",
        "grpc_next_upstream_timeout",
        "proxy_hide_header",
        "grpc_set_header",
        "grpc_hide_header",
        "add_header",
        "mirror",
        "internal",
        "header_filter_by_lua_block",
        "limit_conn",
        "limit_req",
        "limit_rate",
        "limit_rate_after",
        "proxy_pass_request_body",
        "proxy_method",
        "proxy_ssl_server_name",
        "auth_request",
        "auth_request_set",
        "error_page",
        "auth_basic",
        "auth_basic_user_file",
        *(
            f"{module}_ssl_{name}"
            for module in ("proxy", "grpc")
            for name in (
                "trusted_certificate",
                "verify",
                "verify_depth",
                "server_name",
                "name",
                "ciphers",
                "protocols",
                "certificate",
                "certificate_key",
            )
        ),
        "proxy_intercept_errors",
        "grpc_intercept_errors",
        "mirror_request_body",
    },
    "http/server/location/if": {"return", "rewrite"},
    "http/server/server_rewrite_by_lua_block": {'require("edgeagent_routes").route()'},
    "http/server/if": {"return"},
    # TLS passthrough (templates/stream.conf.j2), included at the top level.
    "stream": {"map", "upstream", "server", "map_hash_bucket_size", "map_hash_max_size"},
    "stream/map": {"default"},
    "stream/upstream": {"server"},
    "stream/server": {"listen", "set_real_ip_from", "ssl_preread", "proxy_pass", "proxy_protocol"},
}
DYNAMIC_UPSTREAM = "edgeagent_dynamic"
REDIRECT_CODES = tuple(str(code) for code in range(300, 309))
# The Lua the templates write (crossplane gives a block's text as one argument).
LUA_BLOCKS = {
    f'require("edgeagent_{module}").{function}()'
    for module, function in (
        ("balancer", "check"),
        ("balancer", "balance"),
        ("control", "handle"),
        ("affinity", "set_cookie"),
        ("requests", "log"),
        ("requests", "handle"),
    )
} | {"return"}  # the status server's log_by_lua: its requests are not counted
INIT_LUA = re.compile(
    r'\n    require\("edgeagent_state"\)\.init\("/[\w/.-]+"\)\n'
    r'(    require\("edgeagent_(balancer|certificates|control|routes)"\)\n){4}'
    r'    require\("edgeagent_requests"\)\.init\([0-9]+, \{ [0-9.]+(?:, [0-9.]+)* \}\)\n'
)
# The middle part: a Service name, or for the Gateway API "service.gateway" and
# "route.ruleN" (dots, which no Service name has, keep them apart from an Ingress's).
UPSTREAM_NAME = re.compile(
    r"[0-9a-f]{6}_[a-z0-9-]+_[a-z0-9.-]+_[0-9]+(_h[0-9a-f]{6})?(_t[0-9a-f]{6})?"
)
# The files of a backend TLS policy: its CAs, its client certificate and key.
BACKEND_TLS_FILE_DIRECTIVE = re.compile(
    r"(proxy|grpc)_ssl_(trusted_certificate|certificate|certificate_key)"
)
BACKEND_TLS_FILE = re.compile(r"/.*/auth/[0-9a-f]{16}\.(crt|pem)")
# An Ingress or Gateway host as written: a DNS name, or one under a wildcard.
HOST_AS_WRITTEN = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
# A backend TLS policy's own keep-alive pool in the dynamic mode (annotations/proxyssl.py).
DYNAMIC_POOL = re.compile(r"edgeagent_dynamic_t[0-9a-f]{6}")
# A Gateway API RequestMirror's internal location (render_filters.MIRROR_PREFIX).
MIRROR_URI = re.compile(r"/_edgeagent/mirror/[0-9a-f]+/[0-9]+|/_edgeagent-mirror-[0-9a-f]{12}")
# A mirror-target's upstream outside the cluster, and its internal location's proxy_pass
# (templates/mirror.j2): an upstream, then the URI of the target.
MIRROR_UPSTREAM = re.compile(r"edgeagent_mirror_[0-9a-f]{12}(_[0-9]+)?")
# A cluster Service mirror's balancer in the dynamic mode: it names the backend.
MIRROR_BALANCER = re.compile(
    rf'require\("edgeagent_balancer"\)\.balance\("{UPSTREAM_NAME.pattern}"\)'
)
# A TLS server's certificates, of its scope (render.certificate_scope): "" or an address.
SERVE_CERTIFICATES = re.compile(r'require\("edgeagent_certificates"\)\.serve\("[0-9a-f.:]*"\)')
MIRROR_PASS = re.compile(
    rf"https?://({MIRROR_UPSTREAM.pattern}|{DYNAMIC_UPSTREAM}|{UPSTREAM_NAME.pattern})"
    r"(?P<uri>[/?$].*)"
)
# An auth-url's cluster Service in the dynamic mode (annotations/extauth.py): an upstream
# whose balancer names the backend, and the auth location's proxy_pass to it (or, in the
# static mode, to the endpoints' upstream), then the URL's path and query.
AUTH_UPSTREAM = re.compile(r"edgeagent_auth_[0-9a-f]{12}")
AUTH_PASS = re.compile(
    rf"https?://({AUTH_UPSTREAM.pattern}|{UPSTREAM_NAME.pattern})(?P<uri>[/?][^$]*)"
)
# The target a location's choice maps name (render's choice_maps).
CHOSEN = re.compile(r"\$edgeagent_t[0-9a-f]+")
ENDPOINT = re.compile(r"([0-9.]+|\[[0-9a-f:]+\]):[0-9]+")
WILDCARD = re.compile(r"~\^\[\^\.\]\+(\\\.[a-z0-9-]+)+\$")
# from-to-www-redirect's target (server_names.py).
WWW_REDIRECT = re.compile(r"\$scheme://([a-z0-9.-]+):\$server_port(\$1|\$request_uri)")
# The entries of a canary's maps and weight (templates/canary.j2, annotations/canary.py):
# the fixed decisions, a header value or cookie name of the canary grammar ("." escaped),
# split_clients' shares, and the map of the location's one choice.
CANARY_ENTRY = re.compile(
    r"~\^(always|never|1:|0:|:always:\[01\]\$|:never:\[01\]\$)\$?|~:1\$|1|~\^1"
    r"|[0-9]{1,3}\.[0-9]{2}%|\*"
    r"|~\^([A-Za-z0-9\-_~/:]|\\\.)+\$"
    r"|~([A-Za-z0-9\-._~/!*+,=:@&()|?^$\[\]{}]|\\[-./dDwWsS()\[\]{}*+?|^$])+"
    r"|~\(\?:\^\|\[;,\]\)\\s\*\(\?i:([A-Za-z0-9\-_~]|\\\.)+\)=\(\[\^;,\]\*\)"
)
CANARY_CONTEXTS = ("http/map", "http/split_clients")
AFFINITY_SPEC = re.compile(
    r"(balanced|persistent),[A-Za-z0-9\-._~]+,/[A-Za-z0-9\-._~/]*,[a-z0-9.-]*,[0-9]*,[0-9]*,"
    r"[01],(None|Lax|Strict|),[01],[01]"
)
# A CORS map's key: the allowed origins (annotations/cors.py's origin_regex).
CORS_ORIGINS = re.compile(
    r"~\^\((https?://(\[a-z0-9\\-\]\+\\\.)?([a-z0-9-]|\\\.)+(:[0-9]+)?\|?)+\)\$"
)


# A client certificate header's map (templates/edge.conf.j2): the value without line breaks.
CLIENT_CERTIFICATE_LINE = re.compile(
    r"~\^\(\?<edgeagent_cc_(verify|s_dn|i_dn|escaped_cert)>\[\^\\r\\n\]\*\)\$"
)
LIMIT_KEY = re.compile(r"\$binary_remote_addr|\$edgeagent_limit[0-9a-f]{12}")
LIMIT_ZONE = re.compile(r"edgeagent_limit[0-9a-f]{12}_(conn|rps|rpm)")


def _network(text: str) -> bool:
    return grammar.source_ranges(text, "geo") == (text,)


def _check_proxy_rewrite(directive: str, args: tuple[str, ...]) -> None:
    """What annotations.proxy_rewrites reads, and nothing else."""
    if directive == "proxy_redirect" and args in (("off",), ("default",)):
        return
    if directive == "proxy_redirect":
        source, target = args
        assert proxy_rewrites.redirect_from(source, directive) == source, args
        assert proxy_rewrites.redirect_to(target, directive) == target, args
        return
    parse = {
        "proxy_cookie_domain": proxy_rewrites.cookie_domain,
        "proxy_cookie_path": proxy_rewrites.cookie_path,
    }[directive]
    assert parse(" ".join(args), directive) == args, (directive, args)


def _check_stream(directive: str, args: tuple[str, ...], context: str) -> None:
    """stream.conf's directives: the values of Kubernetes objects are the passed-through
    hosts (map keys) and their upstreams' names and endpoints."""
    if context == "stream/map":
        assert directive == "default" or grammar.host(directive), directive
        (name,) = args
        assert name in STREAM_UPSTREAMS or UPSTREAM_NAME.fullmatch(name), args
    elif directive == "map":
        assert args[0] == "$ssl_preread_server_name" and args[1] in STREAM_VARIABLES, args
    elif directive == "upstream":
        (name,) = args
        assert name in STREAM_UPSTREAMS or UPSTREAM_NAME.fullmatch(name), args
    elif directive == "server" and context == "stream":
        assert args == (), args
    elif directive == "server":
        endpoint, *rest = args
        assert ENDPOINT.fullmatch(endpoint), args
        assert rest in ([], ["down"], *([f"weight={n}"] for n in range(2, 101))), args
    elif directive == "listen":
        grammar.listen(args[0], "listen")
        assert args[1:] in ((), ("proxy_protocol",)), args
    elif directive == "proxy_pass":
        assert args[0] in STREAM_VARIABLES, args
    elif directive == "set_real_ip_from":
        assert _network(args[0]), args
    elif directive in ("map_hash_bucket_size", "map_hash_max_size"):
        assert args[0].isdigit(), args
    else:
        assert args == ("on",), (directive, args)


STREAM_VARIABLES = {"$edgeagent_passthrough_hop", "$edgeagent_passthrough_backend"}
STREAM_UPSTREAMS = {"edgeagent_https", "edgeagent_passthrough", "edgeagent_passthrough_closed"}


def _check_arguments(directive: str, args: tuple[str, ...], context: str) -> None:
    """The directives that carry values from Kubernetes objects hold only those values."""
    if context.startswith("stream"):
        _check_stream(directive, args, context)
    elif directive == "set_real_ip_from":
        assert _network(args[0]), args
    elif directive == "real_ip_header":
        assert args in (("proxy_protocol",), ("X-Forwarded-For",)), args
    elif directive == "location":
        assert (
            args in (("/",),)
            or (len(args) == 2 and args[0] in ("=", "^~") and grammar.PATH.fullmatch(args[1]))
            or (len(args) == 2 and args[0] == "~*" and args[1].startswith("^"))
            or (len(args) == 1 and ERROR_LOCATION.fullmatch(args[0]))
        ), args
        if args[0] == "~*":
            grammar.regex_path(args[1][1:])
    elif directive == "rewrite" and not args[0].startswith("(?i)"):
        _check_filter_rewrite(*args)
    elif directive == "rewrite":
        regex, target, flag = args
        assert regex.startswith("(?i)") and flag == "break", args
        grammar.regex_path(regex[len("(?i)") :])
        grammar.rewrite_target(target, "rewrite")
    elif directive == "proxy_set_header" and args[0] == "X-Forwarded-Prefix":
        grammar.forwarded_prefix(args[1], "X-Forwarded-Prefix")
    elif directive in (
        "proxy_set_header",
        "add_header",
        "proxy_hide_header",
        "grpc_set_header",
        "grpc_hide_header",
    ):
        _check_header(directive, args)
    elif directive == "server_name":
        assert args, args
        for name in args:  # the host, then its aliases
            assert (
                name in ("_", "edgeagent-status") or WILDCARD.fullmatch(name) or grammar.host(name)
            )
    elif directive == "proxy_pass" and AUTH_PASS.fullmatch(args[0]):
        uri = AUTH_PASS.fullmatch(args[0])["uri"]
        assert extauth.render_uri(uri) == uri, args
    elif directive == "proxy_pass" and MIRROR_PASS.fullmatch(args[0]):
        uri = MIRROR_PASS.fullmatch(args[0])["uri"]
        assert mirror.render_uri(uri) == uri, args
    elif directive == "proxy_ssl_name":
        assert mirror.render_host(args[0]) == args[0], args
    elif directive == "mirror_request_body":
        assert args in (("on",), ("off",)), args
    elif directive == "proxy_pass" and context.endswith("location") and "/" in args[0][8:]:
        assert extauth.render_url(args[0]) == args[0], args
    elif directive in ("upstream", "proxy_pass", "grpc_pass"):
        (name,) = args
        scheme, _, name = name.rpartition("://")
        assert scheme in ("", "http", "https", "grpc", "grpcs"), args
        if directive == "proxy_pass":  # a mirror's internal location: the client's URI
            name = name.removesuffix("$request_uri")
        assert (
            name == DYNAMIC_UPSTREAM
            or DYNAMIC_POOL.fullmatch(name)
            or UPSTREAM_NAME.fullmatch(name)
            or CHOSEN.fullmatch(name)
            or MIRROR_UPSTREAM.fullmatch(name)
            or AUTH_UPSTREAM.fullmatch(name)
        ), args
    elif directive in ("proxy_redirect", "proxy_cookie_domain", "proxy_cookie_path"):
        _check_proxy_rewrite(directive, args)
    elif directive == "mirror":
        (uri,) = args
        assert MIRROR_URI.fullmatch(uri), args
    elif directive == "set" and args[0] == "$edgeagent_hash_key":
        assert balance.HASH_KEY.fullmatch(args[1]), args
    elif directive == "set" and args[0] == "$edgeagent_affinity":
        assert AFFINITY_SPEC.fullmatch(args[1]), args
    elif directive == "set" and args[0] in ERROR_PAGE_VARIABLES:
        assert ERROR_PAGE_VALUE.fullmatch(args[1]), args
    elif directive == "error_page" and args[-1].startswith("@"):
        code, equals, location = args
        assert equals == "=" and ERROR_LOCATION.fullmatch(location), args
        assert location.endswith(f"_{code}"), args
    elif directive in ("proxy_intercept_errors", "grpc_intercept_errors"):
        assert args in (("on",), ("off",)), args
    elif directive == "set" and args[0] == "$edgeagent_server_host":
        # the request counters' host, as the Ingress writes it (edgeagent_requests.lua)
        assert HOST_AS_WRITTEN.fullmatch(args[1]) and context == "http/server", args
    elif directive == "set" and args[0] in ("$edgeagent_route_tls", "$edgeagent_route_host"):
        # the route table's location keeps what Lua chose (edgeagent_routes.lua)
        assert args[1] == args[0] and context == "http/server/location", args
    elif directive == "set":
        variable, name = args
        assert variable == "$edgeagent_backend", args
        # the route table's location keeps what Lua chose (edgeagent_routes.lua)
        route = name == variable and context == "http/server/location"
        assert UPSTREAM_NAME.fullmatch(name) or CHOSEN.fullmatch(name) or route, args
    elif directive == "hash":
        key, consistent = args
        assert balance.HASH_KEY.fullmatch(key) and consistent == "consistent", args
    elif directive == "init_by_lua_block":
        assert INIT_LUA.fullmatch(args[0]), args
    elif directive == "server_rewrite_by_lua_block":
        # crossplane does not know it: a block, whose one statement is its "directive"
        assert args == (), args
    elif directive.endswith("_by_lua_block"):
        (code,) = args
        code = code.strip()
        assert (
            code in LUA_BLOCKS
            or MIRROR_BALANCER.fullmatch(code)
            or SERVE_CERTIFICATES.fullmatch(code)
        ), args
    elif directive == "server" and context == "http/upstream":
        endpoint, *weight = args
        assert ENDPOINT.fullmatch(endpoint), args
        assert weight in ([], *([f"weight={n}"] for n in range(2, 101))), args
    elif directive in ("allow", "deny") and context == "http/server/location":
        (network,) = args
        assert network == "all" or grammar.source_ranges(network, directive) == (network,), args
    elif directive == "return" and len(args) == 2 and args[0] in REDIRECT_CODES:
        code, url = args
        app_root = url.removeprefix("$scheme://$http_host")
        www = WWW_REDIRECT.fullmatch(url)
        assert (
            url.startswith("https://$host")
            or (www and grammar.host(www[1]))
            or (app_root != url and grammar.PATH.fullmatch(app_root))
            or grammar.redirect_url(url, "return")
        ), args
    elif directive == "return":
        # 400 and 403: a client certificate not verified, or of another name (auth-tls-*).
        assert args[0] in ("200", "404", "500", "503") or args in (("204",), ("400",), ("403",)), (
            args
        )
    elif directive in ("limit_req_zone", "limit_conn_zone"):
        key, zone, *rate = args
        name, size = zone.removeprefix("zone=").split(":")
        assert LIMIT_KEY.fullmatch(key) and LIMIT_ZONE.fullmatch(name) and size == "5m", args
        assert rate == [] or re.fullmatch(r"rate=[1-9][0-9]*r/[sm]", rate[0]), args
    elif directive == "limit_req":
        zone, burst, nodelay = args
        assert LIMIT_ZONE.fullmatch(zone.removeprefix("zone=")) and nodelay == "nodelay", args
        assert re.fullmatch(r"burst=[1-9][0-9]*", burst), args
    elif directive == "limit_conn":
        assert LIMIT_ZONE.fullmatch(args[0]) and args[1].isdigit(), args
    elif directive in ("limit_rate", "limit_rate_after"):
        assert re.fullmatch(r"[1-9][0-9]*k", args[0]), args
    elif directive == "listen":
        grammar.listen(args[0], "listen")
        assert set(args[1:]) <= {"ssl", "http2", "default_server", "proxy_protocol"}, args
    elif directive in ("ssl_certificate", "ssl_certificate_key"):
        (file,) = args
        grammar.file_path(file, "certificate")
    elif directive in ("ssl_client_certificate", "ssl_crl"):
        (file,) = args
        assert re.fullmatch(r"/.*/auth/[0-9a-f]{16}\.cr[tl]", grammar.file_path(file, "file")), args
    elif BACKEND_TLS_FILE_DIRECTIVE.fullmatch(directive):
        (file,) = args
        assert BACKEND_TLS_FILE.fullmatch(grammar.file_path(file, "file")), args
    elif re.fullmatch(r"(proxy|grpc)_ssl_(verify|server_name)", directive):
        assert args in (("on",), ("off",)), args
    elif re.fullmatch(r"(proxy|grpc)_ssl_verify_depth", directive):
        assert args[0].isdigit(), args
    elif re.fullmatch(r"(proxy|grpc)_ssl_name", directive):
        grammar.host(args[0], directive)
    elif re.fullmatch(r"(proxy|grpc)_ssl_protocols", directive):
        assert set(args) <= set(proxyssl.PROTOCOL_NAMES), args
    elif re.fullmatch(r"((proxy|grpc)_)?ssl_ciphers", directive):
        assert sslciphers.CIPHER_LIST.fullmatch(args[0]) and len(args) == 1, args
    elif directive == "ssl_prefer_server_ciphers":
        assert args in (("on",), ("off",)), args
    elif directive == "ssl_verify_client":
        assert args[0] in ("on", "off", "optional", "optional_no_ca"), args
    elif directive == "ssl_verify_depth":
        assert args[0].isdigit(), args
    elif directive == "auth_basic":
        (realm,) = args
        assert realm == "" or grammar.HEADER_VALUE.fullmatch(realm), args
    elif directive == "auth_basic_user_file":
        (file,) = args
        assert re.fullmatch(r"/.*/auth/[0-9a-f]{16}\.htpasswd", grammar.file_path(file, "file")), (
            args
        )


# A Gateway API filter's rewrite (render_filters): a path from the grammar as a literal
# regex, and the new path or redirect URL built of the grammar's parts.
FILTER_REWRITE_REGEX = re.compile(
    r"\^((/([A-Za-z0-9\-_~!,=:@&]|\\[.*+])+)*(\$|\(/\.\*\)\$)?|\(\.\*\)\$)"
)
FILTER_REWRITE_ORIGIN = re.compile(
    r"(https?|\$scheme)://([a-z0-9.-]+|\$host)(:[0-9]+|\$edgeagent_a[0-9a-f]+_port[0-9]+)?"
)
HEADER_VALUE_VARIABLE = re.compile(
    r"\$(edgeagent_a[0-9a-f]+_[a-z0-9_]+|http_[a-z0-9_]+|upstream_http_[a-z0-9_]+|host|"
    r"edgeagent_(namespace|ingress|service|service_port|request_id)|"
    r"remote_addr|scheme|server_port|edgeagent_server_port|edgeagent_connection|"
    r"edgeagent_forwarded_for|"
    r"edgeagent_hsts(_unpinned)?|edgeagent_cors[0-9a-f]+(_[a-z_]+)?|edgeagent_auth_[0-9]+|"
    r"request_method|request_uri|edgeagent_client_(verify|s_dn|i_dn|escaped_cert))"
)
# default-backend and custom-http-errors (templates/errorpages.j2): a named location per
# default backend and code, and the variables that say whose answer it replaces.
ERROR_LOCATION = re.compile(r"@edgeagent_error_[0-9a-f]{6}_[a-z0-9-]+_[a-z0-9-]+_[0-9]+_[0-9]{3}")
# Their values: a namespace, an Ingress, a Service and a port (number or name), an upstream.
ERROR_PAGE_VALUE = re.compile(r"[a-z0-9][a-z0-9._-]*")
ERROR_PAGE_VARIABLES = tuple(
    f"$edgeagent_{name}" for name in ("namespace", "ingress", "service", "service_port", "fallback")
)
# What an external auth's internal location sends (templates/edge.conf.j2, auth_locations).
AUTH_ORIGINAL_URL = "$scheme://$http_host$request_uri"


def _check_filter_rewrite(regex: str, target: str, flag: str) -> None:
    assert FILTER_REWRITE_REGEX.fullmatch(regex), regex
    origin = FILTER_REWRITE_ORIGIN.match(target)
    if flag == "break":
        assert origin is None, target
    else:
        assert flag in ("redirect", "permanent") and origin is not None, target
    path = target[origin.end() :] if origin else target
    assert path.removesuffix("$1") == "" or grammar.PATH.fullmatch(path.removesuffix("$1")), target


def _check_header(directive: str, args: tuple[str, ...]) -> None:
    name, *rest = args
    grammar.header_name(name, directive)
    if directive in ("proxy_hide_header", "grpc_hide_header"):
        assert rest == [], args
        return
    value = rest[0]
    if directive == "add_header":
        assert rest[1:] == ["always"], args
    assert (
        value in ("", AUTH_ORIGINAL_URL)
        or HEADER_VALUE_VARIABLE.fullmatch(value)
        or grammar.header_value(value, directive)
    ), args


def assert_only_rendered_directives(
    config_file: Path, map_entries: bool = True
) -> list[tuple[str, tuple[str, ...], str]]:
    """Parse the configuration with crossplane (includes followed) and assert that every
    directive is one the templates write, in its place, with well-formed arguments
    (`map_entries` False: but the entries of maps, such as the values a Gateway API
    match compares)."""
    found = directives(config_file)
    for directive, args, context in found:
        if context == "http/map" and not map_entries:
            continue
        allowed = ALLOWED_DIRECTIVES.get(context, set())
        canary_entry = context in CANARY_CONTEXTS and CANARY_ENTRY.fullmatch(directive)
        cors_origins = context == "http/map" and (
            CORS_ORIGINS.fullmatch(directive) or CLIENT_CERTIFICATE_LINE.fullmatch(directive)
        )
        network = context == "http/geo" and args == ("1",) and _network(directive)
        # $edgeagent_server_port's map (TLS passthrough): the internal port to the public one.
        port = context == "http/map" and directive.isdigit() and args[0].isdigit()
        # Passed-through hosts: _check_stream checks them.
        port = port or context == "stream/map"
        assert directive in allowed or canary_entry or cors_origins or network or port, (
            f"unexpected directive {directive!r} in {context!r}"
        )
        _check_arguments(directive, args, context)
    return found


def status_generation(port: int) -> str | None:
    try:
        url = f"http://127.0.0.1:{port}/edgeagent/generation"
        with urllib.request.urlopen(url, timeout=1) as answer:
            return answer.read().decode().strip()
    except OSError:
        return None


def global_directives(site: Site) -> str:
    """Workers read the basic-auth user files (0600) at each request. On the edge they run
    as the master's account, in the agent's group (docs/security.md); a root master (these
    tests as root) would make them nobody, who cannot read them: then keep them root."""
    reads_user_files = any(path.endswith(".htpasswd") for path in site.rendered.files)
    return "daemon off;" + (" user root;" if reads_user_files and os.geteuid() == 0 else "")


class RunningNginx:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.process = subprocess.Popen(
            [NGINX, "-p", str(site.directory), "-c", "nginx.conf", "-g", global_directives(site)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.wait_for(site.generation)

    def wait_for(self, generation: str) -> None:
        deadline = time.monotonic() + START_SECONDS
        while status_generation(self.site.ports.status) != generation:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nginx did not serve generation {generation}")
            time.sleep(0.02)

    def pids(self) -> set[int]:
        """The master's and its workers' PIDs: unchanged when nothing reloaded."""
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        return {master, *map(int, children)}

    def post_control(self, control: Control, body: bytes) -> tuple[int, str]:
        """A hand-made body to the control endpoint, as `control` would send it: the answer's
        status and text (a refusal says why)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.site.ports.status, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {control.token}"}
            connection.request("POST", CONTROL_PATH, body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.read().decode()
        finally:
            connection.close()

    def reload(self, site: Site) -> None:
        """Serve a newly rendered site from the same directory and ports."""
        self.site = site
        self.process.send_signal(signal.SIGHUP)
        self.wait_for(site.generation)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stderr.close()


class NginxRunner:
    """Starts nginx instances and stops every one of them at the end of the test."""

    def __init__(self) -> None:
        self.running: list[RunningNginx] = []

    def start(self, site: Site) -> RunningNginx:
        nginx = RunningNginx(site)
        self.running.append(nginx)
        return nginx

    def stop_all(self) -> None:
        for nginx in self.running:
            nginx.stop()
        self.running.clear()


@contextlib.contextmanager
def echo_site(
    directory: Path,
    names: Iterable[str],
    objects_of: Callable[[dict[str, Backend]], model.Inputs],
    dynamic_mode: bool,
) -> Iterator[Site]:
    """Echo backends `names` started, the objects `objects_of(backends by name)` rendered into
    `directory` in one mode and served by nginx; all stopped afterwards. The site's `backends`
    are the started ones."""
    backends, runner = Backends(), NginxRunner()
    try:
        started = {name: backends.start(name) for name in names}
        site = render_site(directory, objects_of(started), dynamic_mode=dynamic_mode)
        runner.start(site)
        site.backends = started
        yield site
    finally:
        runner.stop_all()
        backends.stop_all()
