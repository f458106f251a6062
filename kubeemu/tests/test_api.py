"""The fidelity kubeemu adds to kmock, seen through the official `kubernetes` client."""

import json
import time
import urllib.request

import kubernetes
import pytest
import urllib3
from kubeemu.emulator import version_order
from kubeemu.testing import EmulatorThread
from kubernetes.client import ApiException

NS = "default"


def ingress(name, labels=None, host="a.example.com", **metadata):
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "labels": labels or {}, **metadata},
        "spec": {"rules": [{"host": host}]},
    }


def watch_events(api_client_call, timeout=1, **kwargs):
    """(type, name, resourceVersion) of every event of one watch, until its timeout."""
    events = []
    for event in kubernetes.watch.Watch().stream(
        api_client_call, timeout_seconds=timeout, **kwargs
    ):
        raw = event["raw_object"]
        events.append(
            (event["type"], raw["metadata"].get("name"), raw["metadata"]["resourceVersion"])
        )
    return events


def test_objects_get_identity_and_versions(networking):
    first = networking.create_namespaced_ingress(NS, ingress("a"))
    second = networking.create_namespaced_ingress(
        NS, ingress("b", creationTimestamp="2017-03-01T10:00:00Z")
    )
    assert first.metadata.uid and first.metadata.uid != second.metadata.uid
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert first.metadata.creation_timestamp is not None
    assert second.metadata.creation_timestamp.year == 2017  # a manifest's timestamp is kept
    listed = networking.list_namespaced_ingress(NS)
    assert (listed.kind, listed.api_version) == ("IngressList", "networking.k8s.io/v1")
    assert listed.metadata.resource_version == second.metadata.resource_version
    assert [i.metadata.name for i in listed.items] == ["a", "b"]
    with pytest.raises(ApiException) as conflict:
        networking.create_namespaced_ingress(NS, ingress("a"))
    assert conflict.value.status == 409
    with pytest.raises(ApiException) as missing:
        networking.read_namespaced_ingress("zzz", NS)
    assert missing.value.status == 404


def test_label_and_field_selectors_on_lists(networking, core):
    networking.create_namespaced_ingress(NS, ingress("web", {"app": "web", "tier": "front"}))
    networking.create_namespaced_ingress(NS, ingress("api", {"app": "api"}))
    networking.create_namespaced_ingress("other", ingress("web", {"app": "web"}))

    def names(**selectors):
        return sorted(
            f"{i.metadata.namespace}/{i.metadata.name}"
            for i in networking.list_ingress_for_all_namespaces(**selectors).items
        )

    assert names(label_selector="app=web") == ["default/web", "other/web"]
    assert names(label_selector="app in (api,web),tier") == ["default/web"]
    assert names(label_selector="app!=web") == ["default/api"]
    assert names(label_selector="!tier") == ["default/api", "other/web"]
    assert names(field_selector="metadata.namespace=other") == ["other/web"]
    assert names(field_selector="metadata.name=web,metadata.namespace!=other") == ["default/web"]
    with pytest.raises(ApiException) as bad:
        names(label_selector="app in (web")
    assert bad.value.status == 400

    core.create_namespaced_secret(NS, {"metadata": {"name": "o"}, "stringData": {"k": "v"}})
    core.create_namespaced_secret(
        NS,
        {
            "metadata": {"name": "t"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "", "tls.key": ""},
        },
    )
    tls = core.list_namespaced_secret(NS, field_selector="type=kubernetes.io/tls").items
    assert [s.metadata.name for s in tls] == ["t"]
    assert core.read_namespaced_secret("o", NS).data == {"k": "dg=="}  # stringData folded in


def test_lists_page_with_limit_and_continue(networking):
    for name in "abcde":
        networking.create_namespaced_ingress(NS, ingress(name))
    seen, token = [], None
    while True:
        page = networking.list_namespaced_ingress(NS, limit=2, _continue=token)
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert seen == list("abcde")


def test_watch_resumes_from_a_resource_version(networking):
    created = networking.create_namespaced_ingress(NS, ingress("a"))
    networking.patch_namespaced_ingress("a", NS, {"metadata": {"labels": {"x": "1"}}})
    networking.delete_namespaced_ingress("a", NS)
    events = watch_events(
        networking.list_namespaced_ingress,
        namespace=NS,
        resource_version=created.metadata.resource_version,
    )
    assert [(t, n) for t, n, _ in events] == [("MODIFIED", "a"), ("DELETED", "a")]
    assert int(events[1][2]) > int(events[0][2])  # the deletion has its own version

    networking.create_namespaced_ingress(NS, ingress("b"))
    assert [
        (t, n) for t, n, _ in watch_events(networking.list_namespaced_ingress, namespace=NS)
    ] == [("ADDED", "b")]  # without a version: the current state first


def test_selector_watch_sees_objects_enter_and_leave(api, networking):
    networking.create_namespaced_ingress(NS, ingress("a", {"app": "web"}))
    start = networking.list_namespaced_ingress(NS).metadata.resource_version
    networking.patch_namespaced_ingress("a", NS, {"metadata": {"labels": {"app": "api"}}})
    networking.patch_namespaced_ingress("a", NS, {"metadata": {"labels": {"app": "web"}}})
    networking.create_namespaced_ingress(NS, ingress("b", {"app": "api"}))
    events = watch_events(
        networking.list_namespaced_ingress,
        namespace=NS,
        label_selector="app=web",
        resource_version=start,
    )
    assert [(t, n) for t, n, _ in events] == [("DELETED", "a"), ("ADDED", "a")]


def test_old_versions_are_gone_with_410(networking):
    first = networking.create_namespaced_ingress(NS, ingress("a"))
    for n in range(60):  # more than the history of 50 the fixture keeps
        networking.patch_namespaced_ingress("a", NS, {"metadata": {"annotations": {"n": str(n)}}})
    with pytest.raises(ApiException) as gone:
        watch_events(
            networking.list_namespaced_ingress,
            namespace=NS,
            resource_version=first.metadata.resource_version,
        )
    assert gone.value.status == 410


def test_expire_ends_open_watches_with_410(api, networking):
    version = networking.create_namespaced_ingress(NS, ingress("a")).metadata.resource_version
    networking.create_namespaced_ingress(NS, ingress("b"))
    stream = kubernetes.watch.Watch().stream(
        networking.list_namespaced_ingress, NS, resource_version=version, timeout_seconds=5
    )
    assert next(stream)["raw_object"]["metadata"]["name"] == "b"
    started = time.monotonic()
    api.expire()
    with pytest.raises(ApiException) as gone:
        next(stream)
    assert gone.value.status == 410
    assert time.monotonic() - started < 4
    with pytest.raises(ApiException):
        watch_events(networking.list_namespaced_ingress, namespace=NS, resource_version=version)


def test_bookmarks_and_server_side_timeout(networking):
    networking.create_namespaced_ingress(NS, ingress("a"))
    version = networking.list_namespaced_ingress(NS).metadata.resource_version
    started = time.monotonic()
    events = watch_events(
        networking.list_namespaced_ingress,
        timeout=1,
        namespace=NS,
        resource_version=version,
        allow_watch_bookmarks=True,
    )
    assert 0.9 < time.monotonic() - started < 3
    assert events and {t for t, _, _ in events} == {"BOOKMARK"}
    assert all(rv == version for _, _, rv in events)


def test_initial_events_end_with_a_bookmark(networking):
    networking.create_namespaced_ingress(NS, ingress("a"))
    lines = []
    for event in kubernetes.watch.Watch().stream(
        networking.list_namespaced_ingress,
        NS,
        timeout_seconds=1,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        allow_watch_bookmarks=True,
    ):
        lines.append(event["raw_object"])
        break
    assert lines[0]["metadata"]["name"] == "a"


def test_replace_and_optimistic_concurrency(networking):
    created = networking.create_namespaced_ingress(NS, ingress("a"))
    body = ingress("a", host="b.example.com", resourceVersion=created.metadata.resource_version)
    replaced = networking.replace_namespaced_ingress("a", NS, body)
    assert replaced.spec.rules[0].host == "b.example.com"
    assert replaced.metadata.uid == created.metadata.uid
    assert replaced.metadata.generation == 2
    with pytest.raises(ApiException) as stale:
        networking.replace_namespaced_ingress("a", NS, body)
    assert stale.value.status == 409


def test_patches_and_422(networking, core):
    networking.create_namespaced_ingress(NS, ingress("a"))
    merged = networking.patch_namespaced_ingress(
        "a",
        NS,
        {"metadata": {"annotations": {"k": "v"}}},
        _content_type="application/merge-patch+json",
    )
    assert merged.metadata.annotations == {"k": "v"}
    patched = networking.patch_namespaced_ingress(
        "a", NS, [{"op": "replace", "path": "/spec/rules/0/host", "value": "c.example.com"}]
    )
    assert patched.spec.rules[0].host == "c.example.com"
    for bad in (
        [{"op": "test", "path": "/spec/rules/0/host", "value": "nope"}],
        [{"op": "remove", "path": "/spec/nothing"}],
        [{"op": "replace", "path": "/metadata/name", "value": "b"}],
    ):
        with pytest.raises(ApiException) as invalid:
            networking.patch_namespaced_ingress("a", NS, bad)
        assert invalid.value.status == 422

    core.create_namespaced_service(
        NS, {"metadata": {"name": "s"}, "spec": {"ports": [{"name": "http", "port": 80}]}}
    )
    service = core.patch_namespaced_service(  # strategic: ports merge by the key "port"
        "s",
        NS,
        {
            "spec": {
                "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                "ports": [{"port": 443}],
            }
        },
    )
    assert [(p.name, p.port) for p in service.spec.ports] == [("http", 80), (None, 443)]


def test_status_subresource_and_no_op_writes(networking):
    created = networking.create_namespaced_ingress(
        NS, {**ingress("a"), "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}}
    )
    assert created.status is None  # status is not written on create
    address = {"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.100"}]}}}
    with_status = networking.patch_namespaced_ingress_status("a", NS, address)
    assert with_status.status.load_balancer.ingress[0].ip == "198.51.100.100"
    assert with_status.metadata.generation == 1
    again = networking.patch_namespaced_ingress_status("a", NS, address)
    assert again.metadata.resource_version == with_status.metadata.resource_version
    ignored = networking.patch_namespaced_ingress(
        "a", NS, {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}}
    )
    assert ignored.status.load_balancer.ingress[0].ip == "198.51.100.100"
    assert ignored.metadata.resource_version == with_status.metadata.resource_version
    spec_only = networking.patch_namespaced_ingress_status(
        "a", NS, {"spec": {"rules": [{"host": "x.example.com"}]}}
    )
    assert spec_only.spec.rules[0].host == "a.example.com"


def test_finalizers_delay_deletion(networking):
    networking.create_namespaced_ingress(NS, ingress("a", finalizers=["example.com/hold"]))
    networking.delete_namespaced_ingress("a", NS)
    held = networking.read_namespaced_ingress("a", NS)
    assert held.metadata.deletion_timestamp is not None
    networking.patch_namespaced_ingress("a", NS, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        networking.read_namespaced_ingress("a", NS)
    assert gone.value.status == 404


def test_delete_collection_by_label(networking):
    networking.create_namespaced_ingress(NS, ingress("a", {"drop": "yes"}))
    networking.create_namespaced_ingress(NS, ingress("b"))
    networking.delete_collection_namespaced_ingress(NS, label_selector="drop=yes")
    assert [i.metadata.name for i in networking.list_namespaced_ingress(NS).items] == ["b"]


def test_api_down_and_back(api, networking):
    networking.create_namespaced_ingress(NS, ingress("a"))
    stream = kubernetes.watch.Watch().stream(
        networking.list_namespaced_ingress, NS, timeout_seconds=30, _request_timeout=(2, 10)
    )
    assert next(stream)["type"] == "ADDED"
    api.stop_serving()
    started = time.monotonic()
    with pytest.raises((urllib3.exceptions.HTTPError, ApiException, OSError)):
        list(stream)  # the open watch is cut at once
    assert time.monotonic() - started < 5
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        networking.list_namespaced_ingress(NS, _request_timeout=1)
    api.start_serving()
    assert [i.metadata.name for i in networking.list_namespaced_ingress(NS).items] == ["a"]


def test_paused_api_hangs_until_resumed(api, networking):
    api.pause()
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        networking.list_namespaced_ingress(NS, _request_timeout=(1, 0.3))
    api.resume()
    assert networking.list_namespaced_ingress(NS, _request_timeout=2).items == []


def test_token_is_enforced():
    with EmulatorThread(token="s3cret") as api:
        networking = kubernetes.client.NetworkingV1Api(api.api_client())
        assert networking.list_namespaced_ingress(NS).items == []
        api.token = "wrong"
        with pytest.raises(ApiException) as denied:
            kubernetes.client.NetworkingV1Api(api.api_client()).list_namespaced_ingress(NS)
        assert denied.value.status == 401


GATEWAY = ("gateway.networking.k8s.io", "v1")


def test_gateway_api_kinds_with_status_and_watch(api):
    custom = kubernetes.client.CustomObjectsApi(api.api_client())
    gateway_class = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "edge"},
        "spec": {"controllerName": "edgeagent.io/gateway-controller"},
    }
    created = custom.create_cluster_custom_object(*GATEWAY, "gatewayclasses", gateway_class)
    assert created["metadata"]["generation"] == 1
    accepted = {"status": {"conditions": [{"type": "Accepted", "status": "True"}]}}
    written = custom.patch_cluster_custom_object_status(
        *GATEWAY, "gatewayclasses", "edge", accepted
    )
    assert written["status"] == accepted["status"]
    assert written["metadata"]["generation"] == 1  # a status write is no new generation

    for plural, kind, version, spec in (
        ("gateways", "Gateway", "v1", {"gatewayClassName": "edge", "listeners": []}),
        ("httproutes", "HTTPRoute", "v1", {"parentRefs": [{"name": "g"}]}),
        ("referencegrants", "ReferenceGrant", "v1beta1", {"from": [], "to": []}),
        ("grpcroutes", "GRPCRoute", "v1", {"parentRefs": [{"name": "g"}]}),
    ):
        body = {
            "apiVersion": f"gateway.networking.k8s.io/{version}",
            "kind": kind,
            "metadata": {"name": "g"},
            "spec": spec,
        }
        custom.create_namespaced_custom_object(GATEWAY[0], version, NS, plural, body)
        listed = custom.list_cluster_custom_object(GATEWAY[0], version, plural)
        assert [item["metadata"]["name"] for item in listed["items"]] == ["g"]
        events = watch_events(
            custom.list_cluster_custom_object, group=GATEWAY[0], version=version, plural=plural
        )
        assert [(t, n) for t, n, _ in events] == [("ADDED", "g")]
    route_status = {"status": {"parents": [{"parentRef": {"name": "g"}, "conditions": []}]}}
    custom.patch_namespaced_custom_object_status(*GATEWAY, NS, "httproutes", "g", route_status)
    route = custom.get_namespaced_custom_object(*GATEWAY, NS, "httproutes", "g")
    assert route["status"]["parents"][0]["parentRef"] == {"name": "g"}
    custom.patch_namespaced_custom_object_status(*GATEWAY, NS, "grpcroutes", "g", route_status)
    route = custom.get_namespaced_custom_object(*GATEWAY, NS, "grpcroutes", "g")
    assert route["status"]["parents"][0]["parentRef"] == {"name": "g"}


def test_discovery_prefers_a_groups_newest_stable_version(api):
    groups = kubernetes.client.ApisApi(api.api_client()).get_api_versions().groups
    gateway = next(group for group in groups if group.name == GATEWAY[0])
    assert gateway.preferred_version.version == "v1"
    assert [v.version for v in gateway.versions][:2] == ["v1", "v1beta1"]
    host = api.api_client().configuration.host
    with urllib.request.urlopen(f"{host}/apis/{GATEWAY[0]}", timeout=30) as answer:
        assert json.load(answer)["preferredVersion"]["version"] == "v1"


def test_kubernetes_version_order():
    versions = ["v1alpha1", "v2", "v1beta2", "foo", "v1", "v1beta1", "v10", "v11alpha2"]
    assert sorted(versions, key=version_order) == [
        "v10",
        "v2",
        "v1",
        "v1beta2",
        "v1beta1",
        "v11alpha2",
        "v1alpha1",
        "foo",
    ]
