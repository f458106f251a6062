"""The `edgeagent` command: `render` and `check` offline, `migrate` from manifests or a
live cluster, `run` the daemon.

`render` and `check` read manifests and call the same `model.build` and `render.render`
the daemon calls, so a preview is what an edge node would serve:

    edgeagent render -f manifests/ -o out --listen-http 127.0.0.1:8080 \\
        --listen-https 127.0.0.1:8443
    nginx -p "$PWD/out" -c nginx.conf        # any user, as-is

`run` hands over to `edgeagent.daemon` (its arguments come from
`edgeagent.settings.add_arguments`), imported only for `run` so the offline commands need
neither the Kubernetes client nor the daemon.

`check` also runs `nginx -t` on the candidate when it finds nginx, and lists the servers
the agent would quarantine (nginx_check.py).

Exit codes: 0 done (render: even with problems, which go to stderr; check: when it
found warnings only, i.e. annotations served without; migrate: when every Ingress would
be served), 1 `check` found problems that keep something from being served as written
(migrate: an Ingress would be refused), 2 bad arguments, unreadable manifests or an
unreachable cluster.
"""

import argparse
import dataclasses
import datetime
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgeagent import (
    __version__,
    annotations,
    cluster,
    grammar,
    manifests,
    nginx_check,
    options,
    ownership,
    render,
)
from edgeagent.annotations import extauth
from edgeagent.files import write_atomically
from edgeagent.gateway import routing as gateway_routing
from edgeagent.gateway.options import ADDRESS_MODES, GatewayOptions
from edgeagent.grammar import CertPair, Invalid
from edgeagent.model import Options, Problem, build
from edgeagent.nodeports import BACKEND_MODES

if TYPE_CHECKING:  # the daemon's settings import the Kubernetes client: only for its commands
    from edgeagent.settings import AgentSettings

DEFAULT_CERTIFICATE_FILE = "certs/default.pem"
SELF_SIGNED_DAYS = 365
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
WARNING = "warning"  # the Problem code of what is served all the same
MIGRATE_CLASS = "nginx"
# The commands that take the daemon's settings (and import the Kubernetes client).
DAEMON_COMMANDS = ("run", "doctor", "routes")
# Each field's flag is its name with dashes, so a parsed argument is found by field name.
INGRESS_NGINX_DEFAULTS = dataclasses.fields(annotations.Config)


def self_signed(common_name: str, hostnames: tuple[str, ...] = ()) -> CertPair:
    """A fresh self-signed ECDSA P-256 pair (fast to make), for `hostnames` as SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
    )
    if hostnames:
        names = [x509.DNSName(name) for name in hostnames]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    return CertPair(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def problem_line(problem: Problem) -> str:
    where = f"{problem.namespace}/{problem.name}" if problem.namespace else problem.name
    return f"{problem.kind} {where}: {problem.reason}"


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write atomically (a running nginx never reads half a file), making its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data, mode, durable=False)


def _load(args: argparse.Namespace):
    inputs, load_problems = manifests.load(args.file)
    options = Options(
        ingress_class=args.ingress_class,
        watch_ingress_without_class=args.watch_ingress_without_class,
        annotations=annotations.Config(
            **{
                each.name: getattr(args, each.name)
                for each in INGRESS_NGINX_DEFAULTS
                if getattr(args, each.name) is not None
            }
        ),
        gateway=GatewayOptions(
            gateway_class=args.gateway_class,
            controller_name=args.gateway_controller_name,
            addresses=args.gateway_address,
            address_mode=args.gateway_address_mode,
        ),
        host_owner=args.host_owner,
        backend_mode=args.backend_mode,
    )
    model, _ = gateway_routing.build(build(inputs, options), inputs, options)
    return inputs, model, [*load_problems, *model.problems]


def shared_host_lines(model) -> list[str]:
    """One warning per host that Ingresses of several namespaces name (ownership.py)."""
    return [
        f"warning: host {host} is named by Ingresses of namespaces {', '.join(namespaces)}"
        for host, namespaces in model.shared_hosts.items()
    ]


def _default_certificate(args: argparse.Namespace, output: Path) -> tuple[str, str]:
    if args.default_certificate:
        certificate = Path(args.default_certificate).resolve()
        key = Path(args.default_key or args.default_certificate).resolve()
        return str(certificate), str(key)
    path = output / DEFAULT_CERTIFICATE_FILE
    if not path.exists():
        pair = self_signed("edgeagent-default")
        write_file(path, pair.certificate_pem + pair.key_pem, PRIVATE_MODE)
    return str(path), str(path)


def command_render(args: argparse.Namespace) -> int:
    _, model, problems = _load(args)
    output = Path(args.output).resolve()
    certificate, key = _default_certificate(args, output)
    layout = render.Layout(
        listen_http=args.listen_http,
        listen_https=args.listen_https,
        output_dir=str(output),
        default_certificate=certificate,
        default_key=key,
        status_listen=args.status_listen,
        trusted_proxies=options.addresses(args.trusted_proxies or ""),
        proxy_protocol=args.proxy_protocol,
        gateway_addresses=args.gateway_address,
        gateway_address_mode=args.gateway_address_mode,
        ssl_passthrough_listen=args.ssl_passthrough_listen,
        ssl_passthrough_backend_listen=args.ssl_passthrough_backend_listen,
        auth_hop_http_listen=args.auth_hop_http_listen,
        auth_hop_https_listen=args.auth_hop_https_listen,
        listen_ipv6=args.listen_ipv6,
    )
    rendered = render.render(model, layout)
    for relative, data in rendered.files.items():
        mode = PRIVATE_MODE if render.is_private(relative) else PUBLIC_MODE
        write_file(output / relative, data, mode)
    main = render.render_main(
        layout, model.annotations.enable_ssl_passthrough, extauth.escapes_uri(model)
    )
    write_file(output / "nginx.conf", main, PUBLIC_MODE)
    keep = {output / relative for relative in rendered.files} | {output / DEFAULT_CERTIFICATE_FILE}
    for stale in [*(output / "certs").glob("*.pem"), *(output / "auth").glob("*.htpasswd")]:
        if stale not in keep:
            stale.unlink()
    for problem in problems:
        print(problem_line(problem), file=sys.stderr)
    print(
        f"wrote {output} (generation {rendered.generation}: {len(model.servers)} hosts, "
        f"{len(model.upstreams)} upstreams, {len(problems)} problems); "
        f"serve it with: nginx -p {output} -c nginx.conf",
        file=sys.stderr,
    )
    return 0


def command_check(args: argparse.Namespace) -> int:
    """Problems but warnings make the exit status 1; a host shared by namespaces is only
    a warning line (served merged, or refused to all but its owner, which is a Problem)."""
    inputs, model, problems = _load(args)
    for problem in problems:
        print(problem_line(problem))
    for line in shared_host_lines(model):
        print(line)
    nginx = args.nginx or shutil.which("nginx")
    if nginx is None:
        print("nginx not found (--nginx PATH): nginx -t was not run", file=sys.stderr)
        return 1 if any(problem.code != WARNING for problem in problems) else 0
    verdict = nginx_check.check(model, inputs.ingresses, nginx, self_signed("edgeagent-default"))
    for problem in verdict.quarantined:
        print(problem_line(problem))
    if verdict.refused:
        print(f"nginx -t refuses the configuration, no one server's fault: {verdict.refused}")
    else:
        print(f"{nginx} -t: {len(verdict.quarantined)} quarantined objects", file=sys.stderr)
    problems = [*problems, *verdict.quarantined]
    failed = verdict.refused or any(problem.code != WARNING for problem in problems)
    return 1 if failed else 0


def _add_migrate_arguments(parser: argparse.ArgumentParser, with_cluster_arguments: bool) -> None:
    _add_selection_arguments(parser, files_required=False)
    # An ingress-nginx cluster's Ingresses name its class.
    parser.set_defaults(ingress_class=MIGRATE_CLASS)
    if with_cluster_arguments:
        from edgeagent import kube

        kubeconfig = next(
            f for f in dataclasses.fields(kube.ConnectionSettings) if f.name == "kubeconfig"
        )
        options.add_argument(parser, kubeconfig)
    annotations_prefix = next(f for f in INGRESS_NGINX_DEFAULTS if f.name == "annotations_prefix")
    options.add_argument(
        parser, annotations_prefix, type=_flag_type(annotations_prefix.metadata["parse"])
    )
    parser.add_argument(
        "--configmap",
        metavar="FILE|NAMESPACE/NAME",
        help="ingress-nginx's ConfigMap: a manifest file, or its namespace/name in the "
        "cluster of --kubeconfig; its settings are printed as role variables",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (the shape is documented)"
    )


def command_migrate(args: argparse.Namespace) -> int:
    """Exit 1 when an Ingress would be refused, 0 when all would be served."""
    from edgeagent import migrate

    if args.file and getattr(args, "kubeconfig", None):
        print("edgeagent: error: migrate reads either -f FILE... or --kubeconfig", file=sys.stderr)
        return 2
    config = annotations.Config(
        **(
            {}
            if args.annotations_prefix is None
            else {"annotations_prefix": args.annotations_prefix}
        )
    )
    # Judged as the roles deploy the edge by default: the dynamic mode (nginx_dynamic_upstreams),
    # which serves what plain nginx cannot (cookie affinity).
    selection = Options(
        ingress_class=args.ingress_class,
        watch_ingress_without_class=args.watch_ingress_without_class,
        dynamic=True,
        annotations=config,
    )
    if args.file:
        inputs, load_problems = manifests.load(args.file)
    else:
        inputs, load_problems = cluster.ingresses(getattr(args, "kubeconfig", None)), []
    reports = migrate.ingresses(inputs, selection, load_problems)
    configmap_report = None
    if args.configmap:
        configmap_report = migrate.configmap(_configmap_data(args))
    if args.json:
        print(json.dumps(migrate.as_json(reports, configmap_report), indent=2))
    else:
        print(migrate.as_text(reports, configmap_report), end="")
    return 1 if any(report.verdict == migrate.REFUSED for report in reports) else 0


def _configmap_data(args: argparse.Namespace) -> dict:
    if Path(args.configmap).is_file():
        found = [
            obj
            for obj in manifests.documents(Path(args.configmap))
            if obj.get("kind") == "ConfigMap"
        ]
        if len(found) != 1:
            raise manifests.ManifestError(
                f"{args.configmap}: expected one ConfigMap, found {len(found)}"
            )
        data = found[0].get("data") or {}
    elif "/" in args.configmap and not args.file:
        namespace, name = args.configmap.split("/", 1)
        data = cluster.configmap(getattr(args, "kubeconfig", None), namespace, name)
    else:
        raise manifests.ManifestError(
            f"--configmap {args.configmap}: no such file (NAMESPACE/NAME is read from a cluster)"
        )
    if not isinstance(data, dict):
        raise manifests.ManifestError(f"--configmap {args.configmap}: data must be a mapping")
    return data


def command_run(args: argparse.Namespace, settings: "AgentSettings") -> int:
    from edgeagent import daemon

    return daemon.main(settings)


def command_doctor(args: argparse.Namespace, settings: "AgentSettings") -> int:
    from edgeagent import doctor

    return doctor.main(args, settings)


def command_routes(args: argparse.Namespace, settings: "AgentSettings") -> int:
    from edgeagent import pod_routes

    return pod_routes.main(args, settings)


def run_daemon_command(args: argparse.Namespace) -> int:
    """A command that takes the daemon's settings: resolved (flags, config file,
    defaults) and checked here once, a bad one being exit status 2."""
    if importlib.util.find_spec("edgeagent.daemon") is None:
        print("edgeagent: error: the daemon (edgeagent.daemon) is not installed", file=sys.stderr)
        return 2
    from edgeagent.settings import ConfigError, resolve

    try:
        settings = resolve(args)
    except ConfigError as error:
        print(f"edgeagent: error: {error}", file=sys.stderr)
        return 2
    return args.command(args, settings)


def _flag_type(parse):
    """An argparse type from a one-argument parser: a bad value is a usage error."""

    def check(value: str):
        try:
            return parse(value)
        except Invalid as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return check


def _checked(parse):
    """An argparse type from a grammar function."""
    return _flag_type(lambda value: parse(value, "value"))


def _add_name_argument(
    parser: argparse.ArgumentParser, flag: str, default: str, check, what: str
) -> None:
    """A name flag whose value must pass the `grammar` function `check`."""
    parser.add_argument(
        flag, default=default, type=_checked(check), help=f"{what} (default: %(default)s)"
    )


def _add_selection_arguments(parser: argparse.ArgumentParser, files_required: bool = True) -> None:
    """Which Ingresses are read: `render`, `check` and `migrate` alike."""
    parser.add_argument(
        "-f",
        "--file",
        action="append",
        required=files_required,
        metavar="FILE_OR_DIR",
        help="manifest file or directory (YAML or JSON; repeatable)",
    )
    _add_name_argument(
        parser,
        "--ingress-class",
        Options.ingress_class,
        grammar.dns1123_subdomain,
        "IngressClass name served",
    )
    parser.add_argument(
        "--watch-ingress-without-class",
        action="store_true",
        help="also serve Ingresses that name no class",
    )


def _add_manifest_arguments(parser: argparse.ArgumentParser) -> None:
    _add_selection_arguments(parser)
    # The same options as `edgeagent run`'s, from the same fields.
    section = parser.add_argument_group("ingress-nginx defaults")
    for each in INGRESS_NGINX_DEFAULTS:
        switch = each.metadata["metavar"] is None  # store_true: no text to parse
        parse = {} if switch else {"type": _flag_type(each.metadata["parse"])}
        options.add_argument(section, each, **parse)
    _add_name_argument(
        parser,
        "--gateway-class",
        GatewayOptions.gateway_class,
        grammar.dns1123_subdomain,
        "GatewayClass name served",
    )
    _add_name_argument(
        parser,
        "--gateway-controller-name",
        GatewayOptions.controller_name,
        grammar.controller_name,
        "spec.controllerName the served GatewayClass must name",
    )
    parser.add_argument(
        "--gateway-address",
        default=GatewayOptions.addresses,
        metavar="ADDR[,ADDR]",
        type=_checked(lambda text, what: grammar.bind_addresses(options.addresses(text), what)),
        help="IP addresses the Gateway listeners bind (default: every address nginx listens on)",
    )
    parser.add_argument(
        "--gateway-address-mode",
        default=GatewayOptions.address_mode,
        choices=ADDRESS_MODES,
        help="shared: every Gateway on every --gateway-address; dedicated: each Gateway on "
        "its own (default: %(default)s)",
    )
    parser.add_argument(
        "--host-owner",
        default=Options.host_owner,
        choices=ownership.MODES,
        help="merge: every namespace's paths on a host are served; namespace: a host "
        "belongs to the namespace of its oldest Ingress (default: %(default)s)",
    )
    parser.add_argument(
        "--backend-mode",
        default=Options.backend_mode,
        choices=BACKEND_MODES,
        help="endpoints: the pod IPs; nodeport: the Services' NodePorts on the Nodes' "
        "InternalIPs (default: %(default)s)",
    )


def parser(
    with_run_arguments: bool = False, with_cluster_arguments: bool = False
) -> argparse.ArgumentParser:
    """The argument parser; the daemon's arguments are added only when `run` is asked
    for, and `migrate`'s --kubeconfig only for `migrate`, so `render` and `check` never
    import the daemon or the Kubernetes client."""
    top = argparse.ArgumentParser(
        prog="edgeagent", description="Kubernetes Ingress to nginx on edge nodes."
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    render_parser = commands.add_parser(
        "render", help="write a complete nginx configuration from manifests"
    )
    _add_manifest_arguments(render_parser)
    render_parser.add_argument("-o", "--output", required=True, metavar="DIR")
    listen = _checked(grammar.listen)
    render_parser.add_argument("--listen-http", required=True, type=listen, metavar="ADDR:PORT")
    render_parser.add_argument("--listen-https", required=True, type=listen, metavar="ADDR:PORT")
    render_parser.add_argument(
        "--status-listen",
        default=render.Layout.status_listen,
        type=listen,
        metavar="ADDR:PORT",
        help="loopback status server (default: %(default)s)",
    )
    for flag, default, what in (
        ("--ssl-passthrough-listen", render.Layout.ssl_passthrough_listen, "HTTPS servers"),
        ("--ssl-passthrough-backend-listen", render.Layout.ssl_passthrough_backend_listen,
         "stream module's hop to the passed-through backends"),
    ):  # fmt: skip
        render_parser.add_argument(
            flag,
            default=default,
            type=listen,
            metavar="ADDR:PORT",
            help=f"with --enable-ssl-passthrough: loopback address of the {what} "
            "(default: %(default)s)",
        )
    for flag, default, scheme in (
        ("--auth-hop-http-listen", render.Layout.auth_hop_http_listen, "http"),
        ("--auth-hop-https-listen", render.Layout.auth_hop_https_listen, "https"),
    ):
        render_parser.add_argument(
            flag,
            default=default,
            type=listen,
            metavar="ADDR:PORT",
            help=f"loopback address where an auth-url {scheme}://$host/... reaches the "
            "servers of the request's host (default: %(default)s)",
        )
    render_parser.add_argument(
        "--default-certificate",
        metavar="CRT",
        help="PEM certificate for hosts without their own (default: a self-signed one, "
        f"generated once into DIR/{DEFAULT_CERTIFICATE_FILE})",
    )
    render_parser.add_argument(
        "--default-key", metavar="KEY", help="its key (default: the certificate file)"
    )
    render_parser.add_argument(
        "--trusted-proxies",
        metavar="CIDR[,CIDR]",
        help="load balancers whose X-Forwarded-For (or PROXY protocol header) names the client",
    )
    render_parser.add_argument(
        "--proxy-protocol",
        action="store_true",
        help="the listeners expect a PROXY protocol header (needs --trusted-proxies)",
    )
    render_parser.add_argument(
        "--listen-ipv6",
        action="store_true",
        help="also listen on every IPv6 address ([::]) at the ports of --listen-http(s)",
    )
    render_parser.set_defaults(command=command_render)

    check_parser = commands.add_parser(
        "check", help="print every problem in the manifests; exit 1 if there is any"
    )
    _add_manifest_arguments(check_parser)
    check_parser.add_argument(
        "--nginx",
        metavar="PATH",
        help="nginx binary: run nginx -t on the candidate and list the servers the agent "
        "would quarantine, with their objects (default: nginx on PATH; none: not run)",
    )
    check_parser.set_defaults(command=command_check)

    migrate_parser = commands.add_parser(
        "migrate",
        help="report what the edge would serve of an ingress-nginx cluster or its manifests",
    )
    _add_migrate_arguments(migrate_parser, with_cluster_arguments)
    migrate_parser.set_defaults(command=command_migrate)

    run_parser = commands.add_parser("run", help="the daemon: watch the API, serve")
    run_parser.set_defaults(command=command_run)
    doctor_parser = commands.add_parser(
        "doctor",
        help="check this edge node: API and token, clock, VIPs, nginx, and whether the "
        "backends answer a TCP connection from here; exit 1 if any check fails",
    )
    doctor_parser.set_defaults(command=command_doctor)
    routes_parser = commands.add_parser(
        "routes",
        help="keep this node's routes to the pods equal to the Nodes' podCIDRs via their "
        "InternalIPs (flat layer-2 clusters without BGP; needs CAP_NET_ADMIN)",
    )
    routes_parser.set_defaults(command=command_routes)
    if with_run_arguments and importlib.util.find_spec("edgeagent.daemon") is not None:
        from edgeagent import doctor, pod_routes, settings

        settings.add_arguments(run_parser)
        settings.add_arguments(doctor_parser)
        doctor.add_arguments(doctor_parser)
        settings.add_arguments(routes_parser)
        pod_routes.add_arguments(routes_parser)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser(
        with_run_arguments=bool(argv) and argv[0] in DAEMON_COMMANDS,
        with_cluster_arguments=argv[:1] == ["migrate"],
    ).parse_args(argv)
    if args.command_name == "render" and args.default_key and not args.default_certificate:
        print("edgeagent: error: --default-key needs --default-certificate", file=sys.stderr)
        return 2
    if args.command_name in DAEMON_COMMANDS:
        return run_daemon_command(args)
    try:
        return args.command(args)
    except (manifests.ManifestError, cluster.ClusterError, Invalid, OSError) as error:
        # Invalid here is an operator value (a path render refuses), not a manifest's.
        print(f"edgeagent: error: {error}", file=sys.stderr)
        return 2
