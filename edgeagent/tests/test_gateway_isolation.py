"""Issue 14's agent-side defences hold for the Gateway API (issue 16) as for Ingresses: a
listener's certificate is judged by the system OpenSSL, and a backendRef's endpoints by
the backend policy (loopback, link-local, the VIPs, the backend networks)."""

import dataclasses

from agentlab import VIP
from edgeagent.backends import BackendPolicy
from edgeagent.gateway import conditions as c
from edgeagent.gateway import routing
from edgeagent.grammar import CertPair
from support_gateway import (
    INFRA,
    gateway,
    gateway_class,
    http_route,
    listener,
    namespace,
    parent,
)
from support_objects import endpoint_slice, openssl_pair, service, tls_secret

from edgeagent import model, quarantine

ADDRESSES = ["10.244.1.5", "127.0.0.1", "169.254.169.254", VIP, "192.0.2.7"]


def inputs(addresses, **kinds) -> model.Inputs:
    return model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        services=[service("infra-backend-v1", {"http": 8080}, namespace=INFRA)],
        endpoint_slices=[
            endpoint_slice(
                "infra-backend-v1", [(a, True) for a in addresses], 8080, namespace=INFRA
            )
        ],
        **kinds,
    )


def built_with(objects: model.Inputs, options: model.Options):
    return routing.build(model.build(objects, options), objects, options)


def test_a_listener_certificate_openssl_refuses_is_an_invalid_reference(tmp_path):
    """grammar.tls_pair's OpenSSL check reaches Gateways through model.read_tls_secret:
    a 1024-bit key nginx -t would refuse never reaches nginx, and the listener says why."""
    weak = CertPair(*openssl_pair(tmp_path, 1024, "sha256"))
    https = listener("https", 443, "HTTPS", certificates=[{"name": "weak"}])
    objects = inputs(
        ["10.244.1.5"],
        secrets=[tls_secret("weak", weak, INFRA)],
        gateways=[gateway("edge", https)],
        http_routes=[
            http_route("web", [parent("edge", sectionName="https")], hostnames=["a.example.com"])
        ],
    )
    built, attachment = built_with(objects, model.Options())
    (state,) = attachment.gateways
    (listener_state,) = state.listeners
    refs = next(each for each in listener_state.conditions if each.type == c.RESOLVED_REFS)
    assert (refs.status, refs.reason) == (False, c.INVALID_CERTIFICATE_REF)
    assert "ee key too small" in refs.message
    assert (INFRA, "weak") not in built.certificates


def test_backend_refs_reach_only_endpoints_the_policy_allows():
    route = http_route("web", [parent("edge")], hostnames=["app.example.com"])
    pods = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}
    pods["spec"] = {"podCIDRs": ["10.244.0.0/16"]}
    objects = inputs(
        ADDRESSES, gateways=[gateway("edge", listener())], http_routes=[route], nodes=[pods]
    )

    (open_upstream,) = built_with(objects, model.Options())[0].upstreams
    assert len(open_upstream.endpoints) == len(ADDRESSES)

    built, _ = built_with(objects, model.Options(backends=BackendPolicy(vips=(VIP,))))
    (upstream,) = built.upstreams
    assert upstream.endpoints == ("10.244.1.5:8080",)
    refused = {p.reason.split()[1] for p in built.problems if p.code == "backend"}
    assert refused == set(ADDRESSES) - {"10.244.1.5"}
    assert {(p.kind, p.namespace) for p in built.problems if p.code == "backend"} == {
        ("EndpointSlice", INFRA)
    }


def test_a_quarantined_host_keeps_the_upstreams_of_its_route_matches():
    """A Gateway host's previous server may send requests to upstreams through its
    locations' choices (header, query or method matches): putting it back for a
    quarantined host brings those upstreams back too, or nginx would find none."""
    host = "match.example.com"
    plain, matched = (
        model.Upstream(name, INFRA, name, 8080, ("10.244.1.5:8080",)) for name in ("a", "b")
    )
    choice = model.Choice((("$http_version", "two"),), "b", 0)
    before = model.Location("prefix", "/", "a", 0, choices=(choice,))
    serving = model.Model(
        servers=(model.Server(host, (before,), False, None),),
        default_server=model.Server("_", (), False, None),
        upstreams=(plain, matched),
        certificates={},
        problems=(),
        served_ingresses=(),
    )
    refused = model.Server(host, (model.Location("prefix", "/", None, 404),), False, None)
    candidate = model.Model(
        servers=(refused,),
        default_server=serving.default_server,
        upstreams=(),
        certificates={},
        problems=(),
        served_ingresses=(),
    )
    kept = quarantine.withhold(candidate, {host: "refused"}, serving, [])
    assert kept.servers == serving.servers
    assert kept.upstreams == (plain, matched)


def test_a_quarantined_wildcard_put_back_under_a_new_one_label_one_is_a_regex_name():
    """A Gateway API wildcard of any depth that nginx -t refused keeps its previous
    server, built when no Ingress's one-label wildcard lay under it (`*.` name). With the
    candidate's new `*.example.com` beside it, it must be a regex name again (after the
    one-label ones), or nginx would give it a.example.com, the Ingress's name."""
    default = model.Server("_", (), False, None)
    route = model.Location("prefix", "/", "a", 0)
    previous = model.Server("*.com", (route,), False, None, any_depth=True)
    serving = model.Model(
        servers=(previous,),
        default_server=default,
        upstreams=(model.Upstream("a", INFRA, "a", 8080, ("10.244.1.5:8080",)),),
        certificates={},
        problems=(),
        served_ingresses=(),
    )
    refused = model.Server("*.com", (), False, None, any_depth=True, regex_name=True)
    ingress = model.Server("*.example.com", (route,), False, None)
    candidate = dataclasses.replace(serving, servers=(refused, ingress))
    kept = quarantine.withhold(candidate, {"*.com": "refused"}, serving, [])
    assert kept.servers == (dataclasses.replace(previous, regex_name=True), ingress)
