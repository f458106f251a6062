"""model.Memo and render.Memo: a daemon's builds and renders reuse what did not change,
and give exactly what a build and render from scratch give.

A random cluster (conflicts, invalid objects, TLS, missing Services) goes through a random
series of changes, as the watch cache would deliver them: an object replaced by a new
one (changed, or the same content as a new object), added or deleted. After every
change the memoised result must equal the one from scratch.
"""

import copy
import random

import pytest
from support_objects import backend, endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import cli, model, render

HOSTS = ["a.example", "b.example", "*.w.example", "x.w.example", None]
PATHS = ["/", "/x", "/x/y", "/healthz", "/x/"]
SERVICES = ["app", "web", "api", "gone"]
CREATED = ["2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z", None]
LAYOUT = render.Layout(
    "127.0.0.1:80", "127.0.0.1:443", "/out/gen-{generation}", "/etc/d.pem", "/etc/d.key"
)
PAIRS = {name: cli.self_signed(f"{name}.example") for name in ("s1", "s2")}


def random_ingress(rng: random.Random, name: str) -> dict:
    def random_backend() -> dict:
        return backend(rng.choice(SERVICES), rng.choice([80, 80, "http", 81]))

    rules = [
        rule(
            rng.choice(HOSTS),
            *(
                path(rng.choice(PATHS), rng.choice(SERVICES), rng.choice([80, "http"]))
                | {"pathType": rng.choice(["Prefix", "Exact", "ImplementationSpecific"])}
                for _ in range(rng.randint(1, 2))
            ),
        )
        for _ in range(rng.randint(0, 2))
    ]
    options = {}
    if rng.random() < 0.3:
        options["default_backend"] = random_backend()
    if rng.random() < 0.5:
        hosts = [r["host"] for r in rules if "host" in r and rng.random() < 0.8]
        options["tls"] = [{"hosts": hosts, "secretName": rng.choice(["s1", "s2", "missing"])}]
    if rng.random() < 0.1:
        options["annotations"] = {"nginx.ingress.kubernetes.io/auth-url": "http://x.ns.svc"}
    elif rng.random() < 0.2:
        options["annotations"] = {"nginx.ingress.kubernetes.io/proxy-read-timeout": "30"}
    return ingress(
        name,
        *rules,
        created=rng.choice(CREATED),
        ingress_class=rng.choice(["edge", "edge", None, "other"]),
        **options,
    )


def random_service(rng: random.Random, name: str) -> dict:
    obj = service(
        name,
        rng.choice([{"http": 80}, {"http": 80, "admin": 81}, {"": 80}][: 2 + (rng.random() < 0.2)]),
    )
    if rng.random() < 0.1:
        obj["spec"]["type"] = "ExternalName"
    return obj


def random_slice(rng: random.Random, name: str) -> dict:
    addresses = [f"10.0.0.{n}" for n in range(1, 5)] + ["not-an-address"] * (rng.random() < 0.1)
    endpoints = [(a, rng.choice([True, True, False, None])) for a in rng.sample(addresses, 2)]
    port_name = rng.choice(["http", "http", "http", ""])
    return endpoint_slice(name, endpoints, rng.choice([8080, 8081]), port_name)


def random_secret(rng: random.Random, name: str) -> dict:
    secret = tls_secret(name, PAIRS[name])
    if rng.random() < 0.2:
        secret["data"]["tls.key"] = "bm90IGEga2V5"  # "not a key"
    return secret


MAKERS = {
    "ingresses": (random_ingress, [f"i{n}" for n in range(8)]),
    "services": (random_service, SERVICES[:3]),
    "endpoint_slices": (random_slice, SERVICES[:3]),
    "secrets": (random_secret, ["s1", "s2"]),
}


def change(rng: random.Random, cluster: dict[str, dict[str, dict]]) -> None:
    kind = rng.choice(list(MAKERS))
    make, names = MAKERS[kind]
    name = rng.choice(names)
    roll = rng.random()
    if roll < 0.2:
        cluster[kind].pop(name, None)
    elif roll < 0.35 and name in cluster[kind]:
        cluster[kind][name] = copy.deepcopy(cluster[kind][name])  # same content, new object
    else:
        cluster[kind][name] = make(rng, name)


@pytest.mark.parametrize("seed", range(10))
def test_memoised_builds_and_renders_equal_fresh_ones(seed):
    rng = random.Random(seed)
    cluster = {
        kind: {name: make(rng, name) for name in names} for kind, (make, names) in MAKERS.items()
    }
    model_memo, render_memo = model.Memo(), render.Memo()
    previous: dict = {}
    for _ in range(50):
        change(rng, cluster)
        inputs = model.Inputs(**{kind: list(objects.values()) for kind, objects in cluster.items()})
        options = model.Options(previous_certificates=previous)
        fresh = model.build(inputs, options)
        remembered = model.build(inputs, options, model_memo)
        assert remembered == fresh
        expected = render.render(fresh, LAYOUT)
        rendered = render.render(remembered, LAYOUT, render_memo)
        assert rendered == expected
        previous = dict(remembered.certificates)


def test_the_memos_keep_only_what_the_last_build_used():
    objects = [ingress(f"i{n}", rule(f"h{n}.example", path("/", "app"))) for n in range(5)]
    inputs = model.Inputs(
        ingresses=objects,
        services=[service("app")],
        endpoint_slices=[endpoint_slice("app", [("10.0.0.1", True)], 8080)],
    )
    model_memo, render_memo = model.Memo(), render.Memo()
    render.render(model.build(inputs, model.Options(), model_memo), LAYOUT, render_memo)
    assert (len(model_memo.ingresses), len(model_memo.servers)) == (5, 5)
    assert (len(render_memo.servers), len(render_memo.upstreams)) == (6, 1)  # and default

    fewer = model.Inputs(ingresses=objects[:2], services=inputs.services)
    built = model.build(fewer, model.Options(), model_memo)
    render.render(built, LAYOUT, render_memo)
    assert (len(model_memo.ingresses), len(model_memo.servers)) == (2, 2)
    assert (len(render_memo.servers), len(render_memo.upstreams)) == (3, 0)


def test_unchanged_parts_are_the_same_objects_in_the_next_build():
    """What render reuses the text of: an endpoint change makes a new upstream only (a
    server names its upstream, whose name does not depend on the endpoints)."""

    def inputs(web_address: str, b_path: str) -> model.Inputs:
        return model.Inputs(
            ingresses=[
                ingress("a", rule("a.example", path("/", "app"))),
                ingress("b", rule("b.example", path(b_path, "web"))),
            ],
            services=services,
            endpoint_slices=[
                app_slice,
                endpoint_slice("web", [(web_address, True)], 8080),
            ],
        )

    services = [service("app"), service("web")]
    app_slice = endpoint_slice("app", [("10.0.0.1", True)], 8080)
    memo = model.Memo()
    first = model.build(inputs("10.0.0.2", "/"), model.Options(), memo)
    second = model.build(inputs("10.0.0.3", "/"), model.Options(), memo)
    app, web = (model.upstream_name("default", name, 80) for name in ("app", "web"))
    upstreams = [{u.name: u for u in built.upstreams} for built in (first, second)]
    assert upstreams[1][app] is upstreams[0][app]
    assert upstreams[1][web] is not upstreams[0][web]
    assert all(s2 is s1 for s1, s2 in zip(first.servers, second.servers, strict=True))
    third = model.build(inputs("10.0.0.3", "/b"), model.Options(), memo)
    assert third.servers[0] is second.servers[0]
    assert third.servers[1] is not second.servers[1]
