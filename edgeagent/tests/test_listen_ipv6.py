"""--listen-ipv6 (issue 18): nginx listens on IPv6 too, `[::]` at the ports of --listen-http and
--listen-https, for the IPv6 VIPs (nginx's `*` and `0.0.0.0` are IPv4 only). Every server,
the default ones included, gets the IPv6 listen beside its IPv4 one; so does the stream
module's HTTPS listener with TLS passthrough; off, nothing listens on IPv6. Real nginx answers
the same host over ::1 and 127.0.0.1, in HTTP and HTTPS."""

from support_http import free_ports, request
from support_nginx import directives, nginx_test, render_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import annotations, cli, model

HOST = "app.example.com"


def inputs_for(backend_host: str, backend_port: int) -> model.Inputs:
    tls = [{"hosts": [HOST], "secretName": "web-tls"}]
    return model.Inputs(
        ingresses=[ingress("web", rule(HOST, path("/", "web")), tls=tls)],
        services=[service("web")],
        endpoint_slices=[endpoint_slice("web", [(backend_host, True)], backend_port)],
        secrets=[tls_secret("web-tls", cli.self_signed(HOST, (HOST,)))],
    )


def server_listens(directory) -> list[tuple[str, ...]]:
    """The listen directives' arguments of the http servers of the rendered site."""
    return [
        args
        for name, args, context in directives(directory / "nginx.conf")
        if name == "listen" and context.endswith("http/server")
    ]


def test_every_server_listens_on_ipv6_beside_ipv4(tmp_path):
    site = render_site(tmp_path, inputs_for("127.0.0.1", 9), listen_ipv6=True)
    assert nginx_test(tmp_path).returncode == 0, nginx_test(tmp_path).stderr
    http, https = site.ports.http, site.ports.https
    listens = server_listens(tmp_path)
    # The default servers and the host's: each IPv4 listen has its IPv6 twin.
    for port in (http, https):
        ipv4 = [args[1:] for args in listens if args[0] == f"127.0.0.1:{port}"]
        ipv6 = [args[1:] for args in listens if args[0] == f"[::]:{port}"]
        assert ipv4 and sorted(ipv4) == sorted(ipv6)
    assert ("default_server",) in [args[1:] for args in listens if args[0] == f"[::]:{http}"]


def test_without_it_nothing_listens_on_ipv6(tmp_path):
    render_site(tmp_path, inputs_for("127.0.0.1", 9))
    assert all(not args[0].startswith("[") for args in server_listens(tmp_path))


def test_the_passthrough_stream_listener_listens_on_ipv6_too(tmp_path):
    proxy, backend_hop = free_ports(2)
    site = render_site(
        tmp_path,
        inputs_for("127.0.0.1", 9),
        model.Options(annotations=annotations.Config(enable_ssl_passthrough=True)),
        ssl_passthrough_listen=f"127.0.0.1:{proxy}",
        ssl_passthrough_backend_listen=f"127.0.0.1:{backend_hop}",
        listen_ipv6=True,
    )
    assert nginx_test(tmp_path).returncode == 0, nginx_test(tmp_path).stderr
    stream = [
        args[0]
        for name, args, context in directives(tmp_path / "nginx.conf")
        if name == "listen" and context == "stream/server"
    ]
    assert f"127.0.0.1:{site.ports.https}" in stream and f"[::]:{site.ports.https}" in stream


def test_nginx_answers_over_both_families(tmp_path, nginx_runner, http_backends):
    backend = http_backends.start("web")
    site = render_site(tmp_path, inputs_for(backend.host, backend.port), listen_ipv6=True)
    nginx_runner.start(site)
    for address in ("127.0.0.1", "::1"):
        # The host's HTTP server redirects to HTTPS (its TLS section); its HTTPS one proxies.
        plain = request(site.ports.http, HOST, address=address)
        assert (plain.status, plain.headers["location"]) == (308, f"https://{HOST}/"), address
        secure = request(site.ports.https, HOST, address=address, tls=True)
        assert (secure.status, secure.echo["backend"]) == (200, "web"), address
