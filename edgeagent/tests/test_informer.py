"""Informers in-process against the emulator: list, watch, 410, errors, silence."""

import threading

import kubernetes
import pytest
from agentlab import eventually
from edgeagent.cache import Cache
from edgeagent.informer import Informer, WatchSettings
from edgeagent.metrics import Metrics
from edgeagent.resources import RESOURCES
from kubeemu.testing import EmulatorThread

FAST = WatchSettings(
    watch_timeout=5, idle_timeout=1, request_timeout=2, connect_timeout=1, backoff_max=0.5
)


@pytest.fixture
def api():
    with EmulatorThread(bookmark_interval=0.3) as emulator:
        yield emulator


@pytest.fixture
def informers(api):
    """Started informers for every kind; yields (cache, metrics, {name: informer})."""
    cache, metrics, stop = Cache(), Metrics(), threading.Event()
    client = api.api_client()
    running = {r.name: Informer(r, client, cache, FAST, metrics, stop) for r in RESOURCES}
    for each in running.values():
        each.start()
    yield cache, metrics, running
    stop.set()
    for each in running.values():
        each.interrupt()


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


def test_only_tls_secrets_reach_the_agent(api, informers):
    cache, _, _ = informers
    client = core(api)
    client.create_namespaced_secret("default", secret("opaque", "Opaque"))
    client.create_namespaced_secret("default", secret("cert", "kubernetes.io/tls"))
    client.create_namespaced_secret(
        "default", secret("token", "kubernetes.io/service-account-token")
    )
    eventually(lambda: names(cache, "secrets") == ["cert"])


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
