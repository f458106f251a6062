"""Informers in-process against the emulator: list, watch, 410, errors, silence."""

import dataclasses
import json
import threading
import time

import kubernetes
import pytest
from agentlab import eventually
from edgeagent.cache import Cache
from edgeagent.health import HealthServer, HealthState
from edgeagent.informer import Informer, WatchSettings
from edgeagent.metrics import Metrics
from edgeagent.resources import GATEWAY_GROUP, RESOURCES
from kubeemu.testing import EmulatorThread
from support_gateway import gateway, http_route, parent
from support_http import request

FAST = WatchSettings(
    watch_timeout=5, idle_timeout=1, request_timeout=2, connect_timeout=1, backoff_max=0.5
)


@pytest.fixture
def api():
    with EmulatorThread(bookmark_interval=0.3) as emulator:
        yield emulator


def start_informers(api, settings=FAST):
    """Started informers for every kind, as the daemon makes them (one per watched
    namespace with `settings.namespaces`): (cache, metrics, {name: informer}, stop)."""
    cache, metrics, stop = Cache(settings.namespaces), Metrics(), threading.Event()
    client = api.api_client()
    running = {}
    for resource in RESOURCES:
        for namespace in (settings.namespaces if resource.namespaced else ()) or (None,):
            each = Informer(resource, client, cache, settings, metrics, stop, namespace)
            running[each.name] = each
            each.start()
    return cache, metrics, running, stop


def stop_informers(running, stop):
    stop.set()
    for each in running.values():
        each.interrupt()


@pytest.fixture
def informers(api):
    """Started informers for every kind; yields (cache, metrics, {name: informer})."""
    cache, metrics, running, stop = start_informers(api)
    yield cache, metrics, running
    stop_informers(running, stop)


def names(cache, kind):
    return sorted(name for _, name in cache.snapshot_kind(kind)[1])


def restarts(metrics, resource, reason):
    return metrics.watch_restarts.labels(resource, reason)._value.get()


def core(api):
    return kubernetes.client.CoreV1Api(api.api_client())


def secret(name, secret_type):
    return {"metadata": {"name": name}, "type": secret_type, "data": {}}


def test_list_then_watch_fills_the_cache_with_api_dicts(api, informers):
    cache, _, _ = informers
    client = core(api)
    client.create_namespaced_service("default", {"metadata": {"name": "a"}, "spec": {}})
    eventually(lambda: cache.synced() and names(cache, "services") == ["a"])
    client.create_namespaced_service("default", {"metadata": {"name": "b"}, "spec": {}})
    client.delete_namespaced_service("a", "default")
    eventually(lambda: names(cache, "services") == ["b"])
    stored = cache.get("services", ("default", "b"))
    assert (stored["kind"], stored["apiVersion"]) == ("Service", "v1")  # API JSON, not models


def test_only_secrets_that_can_serve_reach_the_agent(api, informers):
    cache, _, _ = informers
    client = core(api)
    client.create_namespaced_secret("default", secret("opaque", "Opaque"))
    client.create_namespaced_secret("default", secret("cert", "kubernetes.io/tls"))
    for kind in ("kubernetes.io/service-account-token", "helm.sh/release.v1"):
        client.create_namespaced_secret("default", secret(kind.replace("/", "-"), kind))
    eventually(lambda: names(cache, "secrets") == ["cert", "opaque"])


def test_expired_watches_relist(api, informers):
    cache, metrics, _ = informers
    client = core(api)
    client.create_namespaced_service("default", {"metadata": {"name": "a"}, "spec": {}})
    eventually(lambda: names(cache, "services") == ["a"])
    api.expire()
    client.create_namespaced_service("default", {"metadata": {"name": "b"}, "spec": {}})
    eventually(lambda: names(cache, "services") == ["a", "b"])
    eventually(lambda: restarts(metrics, "services", "expired") >= 1)


def test_api_down_backs_off_and_recovers(api, informers):
    cache, metrics, running = informers
    eventually(cache.synced)
    api.stop_serving()
    eventually(lambda: restarts(metrics, "ingresses", "error") >= 2, timeout=5)
    assert running["ingresses"].last_error
    api.start_serving()
    kubernetes.client.NetworkingV1Api(api.api_client()).create_namespaced_ingress(
        "default", {"metadata": {"name": "back"}, "spec": {}}
    )
    eventually(lambda: names(cache, "ingresses") == ["back"], timeout=5)
    assert running["ingresses"].last_error is None


def test_a_silent_watch_is_restarted(api, informers):
    cache, metrics, _ = informers
    eventually(cache.synced)
    api.pause()
    eventually(lambda: restarts(metrics, "services", "silent") >= 1, timeout=5)
    api.resume()
    core(api).create_namespaced_service("default", {"metadata": {"name": "late"}, "spec": {}})
    eventually(lambda: names(cache, "services") == ["late"], timeout=5)


def test_bookmarks_keep_a_quiet_watch_alive(api, informers):
    cache, metrics, running = informers
    eventually(cache.synced)
    before = running["services"].resource_version
    core(api).create_namespaced_secret("default", secret("elsewhere", "Opaque"))
    # No Service changed, but BOOKMARKs (every 0.3 s) move the version and beat the 1 s
    # idle timeout: the watch is never presumed dead.
    eventually(lambda: running["services"].resource_version != before, timeout=3)
    threading.Event().wait(1.5)
    assert restarts(metrics, "services", "silent") == 0


def test_watched_namespaces_are_listed_and_watched_one_by_one(api):
    """--watch-namespaces: what a Role in each namespace grants, and nothing of another
    namespace reaches the agent; a relist of one namespace keeps the other's objects."""
    client = core(api)
    for namespace in ("team-a", "team-b", "team-c"):
        client.create_namespaced_secret(namespace, secret("cert", "kubernetes.io/tls"))
    settings = dataclasses.replace(FAST, namespaces=("team-a", "team-b"))
    cache, metrics, running, stop = start_informers(api, settings)
    try:
        assert {"secrets/team-a", "secrets/team-b", "ingress_classes"} <= set(running)
        eventually(cache.synced)
        assert sorted(cache.snapshot_kind("secrets")[1]) == [("team-a", "cert"), ("team-b", "cert")]
        client.create_namespaced_secret("team-c", secret("late", "kubernetes.io/tls"))
        client.create_namespaced_secret("team-b", secret("late", "kubernetes.io/tls"))
        eventually(lambda: ("team-b", "late") in cache.snapshot_kind("secrets")[1])
        api.expire()  # every watch relists its own namespace
        client.create_namespaced_secret("team-a", secret("after", "kubernetes.io/tls"))
        eventually(lambda: ("team-a", "after") in cache.snapshot_kind("secrets")[1])
        eventually(lambda: restarts(metrics, "secrets", "expired") >= 2)
        assert sorted(cache.snapshot_kind("secrets")[1]) == [
            ("team-a", "after"),
            ("team-a", "cert"),
            ("team-b", "cert"),
            ("team-b", "late"),
        ]
    finally:
        stop_informers(running, stop)


def test_watched_namespaces_cover_the_gateway_api_kinds(api):
    """The namespaced Gateway API kinds are listed through CustomObjectsApi one namespace
    at a time too: a Gateway or route elsewhere never reaches the agent."""
    custom = kubernetes.client.CustomObjectsApi(api.api_client())
    for namespace in ("team-a", "team-c"):
        custom.create_namespaced_custom_object(
            GATEWAY_GROUP, "v1", namespace, "gateways", gateway("edge", namespace=namespace)
        )
        route = http_route("web", [parent("edge", namespace=None)], namespace=namespace)
        custom.create_namespaced_custom_object(GATEWAY_GROUP, "v1", namespace, "httproutes", route)
    settings = dataclasses.replace(FAST, namespaces=("team-a", "team-b"))
    cache, _, running, stop = start_informers(api, settings)
    try:
        namespaced = {r.name for r in RESOURCES if r.custom and r.namespaced}
        assert namespaced == {"gateways", "http_routes", "reference_grants", "grpc_routes"}
        for kind in namespaced:
            assert {f"{kind}/team-a", f"{kind}/team-b"} <= set(running)
            assert kind not in running
        assert "gateway_classes" in running
        eventually(cache.synced)
        assert list(cache.snapshot_kind("gateways")[1]) == [("team-a", "edge")]
        assert list(cache.snapshot_kind("http_routes")[1]) == [("team-a", "web")]
        custom.create_namespaced_custom_object(
            GATEWAY_GROUP, "v1", "team-b", "gateways", gateway("late", namespace="team-b")
        )
        eventually(lambda: ("team-b", "late") in cache.snapshot_kind("gateways")[1])
    finally:
        stop_informers(running, stop)


def test_a_secret_label_selector_narrows_the_secrets_watched(api):
    client = core(api)
    labelled = {
        **secret("served", "kubernetes.io/tls"),
        "metadata": {"name": "served", "labels": {"edge": "yes"}},
    }
    client.create_namespaced_secret("default", labelled)
    client.create_namespaced_secret("default", secret("other", "kubernetes.io/tls"))
    settings = dataclasses.replace(FAST, secret_label_selector="edge=yes")
    cache, _, running, stop = start_informers(api, settings)
    try:
        eventually(cache.synced)
        assert names(cache, "secrets") == ["served"]
    finally:
        stop_informers(running, stop)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_informer_thread_that_dies_makes_the_agent_unhealthy(api):
    """A bug in a watch thread (here: the relevance hook raising) must not leave the edge
    silently stale: /healthz names the dead thread and answers 503."""
    cache, metrics, running, stop = start_informers(api)
    health = HealthState(dict, lambda: [each.thread for each in running.values()])
    health.record("applied", "0123456789abcdef")
    server = HealthServer("127.0.0.1:0", health, metrics)
    server.start()
    port = server.port
    try:
        eventually(cache.synced)
        assert request(port, "localhost", "/healthz").status == 200
        assert metrics.api_last_contact._value.get() > time.time() - 60

        def broken(kind, old, new):
            raise RuntimeError("a bug")

        cache.relevant = broken
        core(api).create_namespaced_service("default", {"metadata": {"name": "a"}, "spec": {}})
        eventually(lambda: request(port, "localhost", "/healthz").status == 503)
        body = request(port, "localhost", "/healthz").body
        assert json.loads(body)["dead_threads"] == ["informer-services"]
    finally:
        server.server.shutdown()
        server.server.server_close()
        stop_informers(running, stop)
