"""server-alias, from-to-www-redirect, upstream-vhost and x-forwarded-prefix through a
real nginx to real backends, in both modes, with the answers ingress-nginx's e2e tests
expect (test/e2e/annotations/alias.go, fromtowwwredirect.go, upstreamvhost.go,
xforwardedprefix.go); and who gets a name when an alias collides with a host."""

import pytest
from support_http import common_name, request
from support_nginx import assert_only_rendered_directives, echo_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import cli, dynamic, model

PREFIX = "nginx.ingress.kubernetes.io/"
OLD, NEW = "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"
BACKENDS = ("app", "other", "www-app", "shop", "vhost", "prefixed")


def annotated(name: str, *rules: dict, created: str = OLD, namespace: str = "default", **given):
    keys = {PREFIX + key.replace("_", "-"): value for key, value in given.items()}
    return ingress(name, *rules, created=created, namespace=namespace, annotations=keys)


def site_objects(backends: dict, certificates: dict) -> model.Inputs:
    objects = model.Inputs()
    for name in BACKENDS:
        objects.services.append(service(name))
        objects.endpoint_slices.append(
            endpoint_slice(name, [(backends[name].host, True)], backends[name].port)
        )
    tls_host = ingress(
        "shop",
        rule("shop.example.com", path("/", "shop")),
        created=OLD,
        tls=[{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
        annotations={
            PREFIX + "from-to-www-redirect": "true",
            PREFIX + "server-alias": "store.example.com",
        },
    )
    objects.ingresses.extend(
        [
            annotated(
                "app",
                rule("app.example.com", path("/", "app")),
                server_alias="bar, app.test, Shop.Example.NET",
            ),
            # A second Ingress on the host: the alias serves its path too (alias.go).
            annotated("app-b", rule("app.example.com", path("/b", "app")), created=NEW),
            # An alias that is another Ingress's host: that host's rules serve it.
            annotated(
                "collide",
                rule("collide.example.com", path("/", "app")),
                server_alias="other.example.com",
            ),
            ingress("other", rule("other.example.com", path("/", "other")), created=NEW),
            annotated(
                "www", rule("www.example.org", path("/", "www-app")), from_to_www_redirect="true"
            ),
            tls_host,
            annotated(
                "vhost",
                rule("vhost.example.com", path("/", "vhost")),
                upstream_vhost="internal.example.net:8080",
            ),
            annotated(
                "prefixed",
                rule(
                    "prefixed.example.com",
                    path("/api(/|$)(.*)", "prefixed", kind="ImplementationSpecific"),
                ),
                rewrite_target="/$2",
                x_forwarded_prefix="/api",
            ),
            annotated(
                "empty-prefix",
                rule("noprefix.example.com", path("/", "prefixed")),
                x_forwarded_prefix="",
            ),
        ]
    )
    objects.secrets.append(tls_secret("shop-tls", certificates["shop"]))
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    certificates = {"shop": cli.self_signed("shop", ("shop.example.com", "www.shop.example.com"))}
    with echo_site(
        tmp_path_factory.mktemp("names"),
        BACKENDS,
        lambda started: site_objects(started, certificates),
        request.param == "dynamic",
    ) as built:
        yield built


def get(site, host, target="/", **options):
    return request(site.ports.http, host, target, **options)


def get_tls(site, host, target="/", **options):
    return request(site.ports.https, host, target, tls=True, **options)


# DNS names in any case, as nginx matches server names (ingress-nginx took upper case).
@pytest.mark.parametrize(
    "host", ["app.example.com", "bar", "app.test", "shop.example.net", "SHOP.example.net"]
)
def test_server_alias_serves_every_path_of_the_host(site, host):
    for target in ("/", "/b"):
        answer = get(site, host, target)
        assert (answer.status, answer.backend) == (200, "app")
        assert answer.echo["headers"]["host"] == host.lower()  # nginx's $host


def test_an_alias_that_is_a_host_with_rules_is_served_by_them(site):
    assert get(site, "other.example.com").backend == "other"
    reasons = [p.reason for p in site.model.problems if p.name == "collide"]
    assert reasons == [
        "server-alias other.example.com of host collide.example.com is a host with rules of "
        "its own, which serve it (as in ingress-nginx); not an alias"
    ]


def test_unknown_names_stay_404(site):
    assert get(site, "baz").status == 404


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/foo", "http://www.example.org:{port}/foo"),  # fromtowwwredirect.go
        ("/foo/", "http://www.example.org:{port}/foo"),  # one trailing slash less
        ("/a?b=c", "http://www.example.org:{port}/a?b=c"),
    ],
)
def test_from_to_www_redirects_the_bare_name_to_www(site, target, location):
    answer = get(site, "example.org", target)
    assert answer.status == 308
    assert answer.headers["location"] == location.format(port=site.ports.http)
    assert get(site, "www.example.org", target).backend == "www-app"


def test_from_to_www_over_https_with_the_hosts_certificate(site):
    """www.shop.example.com -> shop.example.com over HTTPS, with the certificate of the
    host, which names both (fromtowwwredirect.go's HTTPS case)."""
    answer = get_tls(site, "www.shop.example.com", "/")
    assert answer.status == 308
    assert answer.headers["location"] == f"https://shop.example.com:{site.ports.https}"
    assert common_name(answer.certificate) == "shop"
    assert get_tls(site, "shop.example.com", "/").backend == "shop"
    # Plain HTTP to the www name: the same redirect, to HTTP, as ingress-nginx's.
    plain = get(site, "www.shop.example.com", "/x")
    assert plain.headers["location"] == f"http://shop.example.com:{site.ports.http}/x"


def test_an_alias_of_a_tls_host_gets_its_certificate(site):
    """By SNI in both modes: the dynamic mode's certificate lookup knows the aliases."""
    answer = get_tls(site, "store.example.com", "/")
    assert (answer.status, answer.backend) == (200, "shop")
    assert common_name(answer.certificate) == "shop"
    hosts = dynamic.state_of(site.model).hosts
    assert hosts["", "store.example.com"] == hosts["", "shop.example.com"]
    # And plain HTTP to it redirects to HTTPS, as to the host (ssl-redirect).
    assert get(site, "store.example.com", "/x").headers["location"] == (
        "https://store.example.com/x"
    )


def test_upstream_vhost_sets_the_host_the_backend_sees(site):
    headers = get(site, "vhost.example.com", "/x").echo["headers"]
    assert headers["host"] == "internal.example.net:8080"
    assert headers["x-forwarded-host"] == "vhost.example.com"
    # The other proxy headers are still sent from this location: nginx's own default
    # would be "Connection: close", the edge's keeps the upstream connection alive.
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert "connection" not in headers


def test_x_forwarded_prefix_with_rewrite_target(site):
    echo = get(site, "prefixed.example.com", "/api/items").echo
    assert echo["target"] == "/items"
    assert echo["headers"]["x-forwarded-prefix"] == "/api"
    assert echo["headers"]["host"] == "prefixed.example.com"


def test_empty_x_forwarded_prefix_sends_none(site):
    headers = get(site, "noprefix.example.com").echo["headers"]
    assert "x-forwarded-prefix" not in headers
    assert not [p for p in site.model.problems if p.name == "empty-prefix"]


def test_only_the_expected_directives_are_rendered(site):
    found = assert_only_rendered_directives(site.directory / "nginx.conf")
    names = [args for directive, args, _ in found if directive == "server_name"]
    assert ("app.example.com", "app.test", "bar", "shop.example.net") in names


def names_model(host_owner: str, *ingresses: dict) -> model.Model:
    objects = model.Inputs(ingresses=list(ingresses))
    return model.build(objects, model.Options(host_owner=host_owner))


def server(built: model.Model, host: str) -> model.Server:
    return next(s for s in built.servers if s.host == host)


def problems_of(built: model.Model, name: str) -> list[tuple[str, str]]:
    """Its problems but the missing Services (the model's objects have none)."""
    return [
        (p.code, p.reason) for p in built.problems if p.name == name and p.code != "missing-service"
    ]


def test_an_alias_of_another_namespaces_host_follows_the_owner_rule():
    """--host-owner namespace: an alias claims its name as a host does; the older claim
    (here the host of team-b's older Ingress) keeps it."""
    owner = ingress("b", rule("b.example.com", path("/", "b")), namespace="team-b", created=OLD)
    alias = annotated(
        "a",
        rule("a.example.com", path("/", "a")),
        namespace="team-a",
        created=NEW,
        server_alias="b.example.com",
    )
    built = names_model("namespace", owner, alias)
    assert server(built, "a.example.com").aliases == ()
    [(code, reason)] = problems_of(built, "a")
    assert code == "conflict"
    assert reason.startswith(
        "server-alias b.example.com: host b.example.com belongs to namespace team-b"
    )
    # merge (ingress-nginx's): the host's own rules serve it, and the alias is left out.
    built = names_model("merge", owner, alias)
    assert server(built, "a.example.com").aliases == ()
    assert [code for code, _ in problems_of(built, "a")] == ["warning"]


def test_rules_claim_their_host_before_any_alias_does():
    """Owners are decided by the rules first (ownership.py), so an older Ingress's alias
    cannot take a host from a younger Ingress of another namespace."""
    alias = annotated(
        "a",
        rule("a.example.com", path("/", "a")),
        namespace="team-a",
        created=OLD,
        server_alias="b.example.com",
    )
    late = ingress("b", rule("b.example.com", path("/", "b")), namespace="team-b", created=NEW)
    built = names_model("namespace", alias, late)
    assert server(built, "a.example.com").aliases == ()
    assert server(built, "b.example.com").locations[0].path == "/"
    assert [code for code, _ in problems_of(built, "a")] == ["conflict"]
    assert problems_of(built, "b") == []


def test_one_name_is_the_alias_of_one_host_the_oldest_ingresses():
    first = annotated(
        "first", rule("one.example.com", path("/", "a")), server_alias="shared.example.com"
    )
    second = annotated(
        "second",
        rule("two.example.com", path("/", "a")),
        created=NEW,
        server_alias="shared.example.com",
    )
    built = names_model("merge", second, first)
    assert server(built, "one.example.com").aliases == ("shared.example.com",)
    assert server(built, "two.example.com").aliases == ()
    [(code, reason)] = problems_of(built, "second")
    assert code == "conflict" and "already served by default/first" in reason


def test_from_to_www_is_not_made_for_a_name_with_rules_of_its_own():
    bare = annotated("bare", rule("example.net", path("/", "a")), from_to_www_redirect="true")
    www = ingress("www", rule("www.example.net", path("/", "b")), created=NEW)
    built = names_model("merge", bare, www)
    assert [s.redirect_to for s in built.servers] == [None, None]
    [(code, reason)] = problems_of(built, "bare")
    assert code == "warning" and reason.startswith(
        "from-to-www-redirect: www.example.net has rules"
    )
