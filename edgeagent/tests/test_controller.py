"""The controller's decisions without nginx: what is relevant, and how bursts coalesce.

nginx and the API are replaced here by recorders (the integration tests run the real
ones); what is under test is when the controller syncs and with which state.
"""

import dataclasses
import threading
import time

import pytest
from agentlab import endpoint_slice, eventually, ingress, rule
from edgeagent.apply import ApplyResult, Outcome
from edgeagent.cache import Cache
from edgeagent.control import ControlError
from edgeagent.controller import Controller, SyncSettings, references
from edgeagent.gateway import references as gateway_references
from edgeagent.health import HealthState
from edgeagent.metrics import Metrics
from edgeagent.resources import NAMES
from support_gateway import backend_ref, gateway, gateway_class, http_route, listener, parent

from edgeagent import model, render


class RecordingApplier:
    def __init__(self) -> None:
        self.applied: list[render.Rendered] = []

    def apply(self, rendered: render.Rendered) -> ApplyResult:
        self.applied.append(rendered)
        return ApplyResult(Outcome.APPLIED, rendered.generation)


class Recorder:
    """Stands for the status publisher and the event recorder."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        return lambda *args: self.calls.append((name, *args))


def namespaced(obj, namespace="default"):
    obj.setdefault("metadata", {})["namespace"] = namespace
    return obj


def service(name):
    return namespaced(
        {
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        }
    )


def layout_in(tmp_path) -> render.Layout:
    return render.Layout(
        listen_http="127.0.0.1:8080",
        listen_https="127.0.0.1:8443",
        output_dir=f"{tmp_path}/gen-{{generation}}",
        default_certificate=f"{tmp_path}/default.crt",
        default_key=f"{tmp_path}/default.key",
    )


@pytest.fixture
def controller(tmp_path):
    cache, stop, applier = Cache(), threading.Event(), RecordingApplier()
    layout = layout_in(tmp_path)
    running = Controller(
        cache,
        model.Options(ingress_class="edge"),
        layout,
        applier,
        Recorder(),
        Recorder(),
        Metrics(),
        HealthState(dict),
        SyncSettings(quiet_period=0.05, max_delay=0.3, min_reload_interval=0.1),
        stop,
    )
    cache.replace("ingresses", [namespaced(ingress("web", [rule("web.example.com", "web")]))])
    cache.replace("services", [service("web"), service("unused")])
    cache.replace("endpoint_slices", [namespaced(endpoint_slice("web", 8080, ["10.0.0.1"], []))])
    for kind in set(NAMES) - {"ingresses", "services", "endpoint_slices"}:
        cache.replace(kind, [])
    running.start()
    eventually(lambda: len(applier.applied) == 1, stable=1)
    yield cache, applier, running
    stop.set()
    cache.wake()


def test_references_cover_every_backend_and_tls_secret():
    refs = references(
        [
            namespaced(
                {
                    "spec": {
                        "defaultBackend": {"service": {"name": "fallback"}},
                        "rules": [
                            {"http": {"paths": [{"backend": {"service": {"name": "a"}}}]}},
                            "junk",
                        ],
                        "tls": [{"secretName": "cert"}, {"hosts": ["x"]}],
                    }
                },
                "ns",
            ),
            {"metadata": {"name": "broken"}, "spec": "not a mapping"},
        ],
        "nginx.ingress.kubernetes.io",
    )
    assert refs.services == {("ns", "fallback"), ("ns", "a")}
    assert refs.secrets == {("ns", "cert")}


def test_a_burst_becomes_one_or_two_syncs_of_the_latest_state(controller):
    cache, applier, _ = controller
    started = time.monotonic()
    for n in range(200):  # 200 endpoint changes within about 0.4 s
        cache.upsert(
            "endpoint_slices",
            namespaced(endpoint_slice("web", 8080, [f"10.0.{n // 250}.{n % 250 + 1}"], [])),
        )
        time.sleep(0.002)
    burst = time.monotonic() - started
    eventually(lambda: b"10.0.0.200:8080" in applier.applied[-1].files["edge.conf"], stable=1)
    time.sleep(0.4)
    syncs = len(applier.applied) - 1
    assert 1 <= syncs <= 1 + int(burst / 0.3), (syncs, burst)


def test_changes_that_cannot_alter_the_output_do_not_sync(controller):
    cache, applier, _ = controller
    with_status = namespaced(ingress("web", [rule("web.example.com", "web")]))
    with_status["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.100"}]}}
    with_status["metadata"]["resourceVersion"] = "99"
    cache.upsert("ingresses", with_status)  # status and version only
    cache.upsert("services", {**service("unused"), "spec": {"ports": []}})  # no Ingress uses it
    cache.upsert(
        "secrets", namespaced({"metadata": {"name": "unused-tls"}, "type": "kubernetes.io/tls"})
    )
    time.sleep(0.5)
    assert len(applier.applied) == 1

    cache.upsert("services", {**service("web"), "spec": {"ports": [{"name": "http", "port": 81}]}})
    eventually(lambda: len(applier.applied) == 2, stable=1)


class RefusingControl:
    """Stands for nginx's control endpoint while it refuses every push."""

    def __init__(self) -> None:
        self.pushes = 0

    def write_certificates(self, state) -> None:
        pass

    def write_state(self, state) -> int:
        return 1

    def push(self, state, full: bool) -> int:
        self.pushes += 1
        raise ControlError(507, "shared dict: no memory")


def test_failed_pushes_are_retried_with_a_growing_backoff(tmp_path):
    cache, control = Cache(), RefusingControl()
    cache.replace("ingresses", [namespaced(ingress("web", [rule("web.example.com", "web")]))])
    cache.replace("services", [service("web")])
    for kind in set(NAMES) - {"ingresses", "services"}:
        cache.replace(kind, [])
    layout = layout_in(tmp_path)
    settings = SyncSettings(retry_initial=5.0, retry_max=300.0)
    running = Controller(
        cache,
        model.Options(ingress_class="edge", upstreams_without_endpoints=True),
        layout,
        RecordingApplier(),  # every generation applies: the pushes alone fail
        Recorder(),
        Recorder(),
        Metrics(),
        HealthState(dict),
        settings,
        threading.Event(),
        control=control,
    )
    delays = []
    for _ in range(3):
        running.sync()
        delays.append(round(running._retry_at - time.monotonic()))
    assert control.pushes == 3
    assert delays == [5, 10, 20]


class RecordingControl(RefusingControl):
    """nginx's control endpoint taking every push; the states kept, pushed and written."""

    def __init__(self) -> None:
        super().__init__()
        self.pushed: list = []
        self.written: list = []

    def write_state(self, state) -> int:
        self.written.append(state)
        return 1

    def push(self, state, full: bool) -> int:
        self.pushed.append(state)
        return 1

    def remove_certificates_except(self, state) -> None:
        pass


class ScriptedApplier(RecordingApplier):
    """Applies, or fails the reload, as its `outcome` says."""

    outcome = Outcome.APPLIED

    def apply(self, rendered: render.Rendered) -> ApplyResult:
        self.applied.append(rendered)
        return ApplyResult(self.outcome, rendered.generation)


def dynamic_controller(tmp_path, cache, ingresses, services, applier, control) -> Controller:
    """A controller in the dynamic mode over `cache`, holding only these Ingresses and
    Services, applying and pushing through the given recorders."""
    cache.replace("ingresses", ingresses)
    cache.replace("services", [service(name) for name in services])
    for kind in set(NAMES) - {"ingresses", "services"}:
        cache.replace(kind, [])
    return Controller(
        cache,
        model.Options(ingress_class="edge", upstreams_without_endpoints=True, dynamic=True),
        dataclasses.replace(
            layout_in(tmp_path), dynamic_dir=f"{tmp_path}/dynamic", lua_dir=f"{tmp_path}/lua"
        ),
        applier,
        Recorder(),
        Recorder(),
        Metrics(),
        HealthState(dict),
        SyncSettings(),
        threading.Event(),
        control=control,
    )


def test_a_failed_reload_keeps_the_routes_of_a_host_leaving_the_table(tmp_path):
    """A host the candidate moves from the route table to a server block of its own keeps
    its routes while that block is not served (the reload failed); once a reload serves
    the block, the routes go."""
    cache, control, applier = Cache(), RecordingControl(), ScriptedApplier()
    plain = namespaced(ingress("web", [rule("web.example.com", "web")]))
    running = dynamic_controller(tmp_path, cache, [plain], ["web"], applier, control)
    running.sync()
    assert list(control.pushed[-1].routes) == ["web.example.com"]

    annotated = dict(plain, metadata={**plain["metadata"], "annotations": {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "120"}})  # fmt: skip
    cache.replace("ingresses", [annotated])
    applier.outcome = Outcome.FAILED
    running.sync()
    assert "web.example.com" in control.pushed[-1].routes
    assert "web.example.com" in control.written[-1].routes  # what a restarted nginx loads

    applier.outcome = Outcome.APPLIED
    running.sync()
    assert "web.example.com" not in control.pushed[-1].routes


def test_a_failed_reload_keeps_the_routes_of_a_gateway_wildcard_leaving_the_table(tmp_path):
    """The same for an HTTPRoute's wildcard of any depth, whose table name is
    **.example.com (route_table.table_name), not its host."""
    cache, control, applier = Cache(), RecordingControl(), ScriptedApplier()
    running = dynamic_controller(tmp_path, cache, [], ["web"], applier, control)
    edge = gateway("edge", listener(), namespace="default")
    route = http_route(
        "star",
        [parent("edge", namespace="default")],
        [{"backendRefs": [backend_ref("web", 80)]}],
        ["*.example.com"],
        namespace="default",
    )
    cache.replace("gateway_classes", [gateway_class()])
    cache.replace("gateways", [edge])
    cache.replace("http_routes", [route])
    running.sync()
    assert list(control.pushed[-1].routes) == ["**.example.com"]

    timed = [{"backendRefs": [backend_ref("web", 80)], "timeouts": {"request": "10s"}}]
    cache.replace("http_routes", [{**route, "spec": {**route["spec"], "rules": timed}}])
    applier.outcome = Outcome.FAILED
    running.sync()
    # A delta's removed host has no rules.
    assert control.pushed[-1].routes.get("**.example.com", ()) != ()
    assert control.written[-1].routes.get("**.example.com", ()) != ()

    applier.outcome = Outcome.APPLIED
    running.sync()
    assert "**.example.com" not in control.written[-1].routes


def test_gateway_objects_refer_to_their_backends_and_certificates():
    route = namespaced(
        {
            "spec": {
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "web", "port": 80},
                            {"name": "other", "namespace": "elsewhere", "port": 80},
                            {"group": "example.net", "kind": "Bucket", "name": "not-a-service"},
                        ]
                    },
                    "junk",
                ]
            }
        },
        "ns",
    )
    gateway = namespaced(
        {
            "spec": {
                "listeners": [
                    {
                        "tls": {
                            "certificateRefs": [{"name": "cert"}, {"name": "x", "namespace": "y"}]
                        }
                    },
                    {"name": "plain"},
                ]
            }
        },
        "ns",
    )
    assert gateway_references.services([route, {"spec": "broken"}]) == {
        ("ns", "web"),
        ("elsewhere", "other"),
    }
    assert gateway_references.secrets([gateway]) == {("ns", "cert"), ("y", "x")}


def secret(name):
    return namespaced(
        {
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": name, "annotations": {"copy": "of the data"}},
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
        }
    )


def ingress_naming(*secrets):
    tls = [{"hosts": ["web.example.com"], "secretName": name} for name in secrets]
    return "ingresses", namespaced(ingress("web", [rule("web.example.com", "web")], tls=tls))


def gateway_naming(*secrets):
    https = listener("https", 443, "HTTPS", certificates=[{"name": name} for name in secrets])
    return "gateways", gateway("edge", https, namespace="default")


def annotation_naming(*secrets):
    """The last Secret named by auth-secret (basic authentication), the others in spec.tls."""
    annotations = {"nginx.ingress.kubernetes.io/auth-secret": secrets[-1]} if secrets else {}
    kind, obj = ingress_naming(*secrets[:-1])
    obj["metadata"]["annotations"] = annotations
    return kind, obj


@pytest.mark.parametrize(
    "naming",
    [ingress_naming, gateway_naming, annotation_naming],
    ids=["ingress", "gateway", "annotation"],
)
def test_only_referenced_secrets_are_held_whole(tmp_path, naming):
    """Issue 14: a Secret no Ingress (spec.tls) or Gateway (a listener's certificateRefs)
    names keeps only its identity in the agent's memory; one named anew is read again
    whole (here from a dict standing for the API)."""
    cache, stop, applier = Cache(), threading.Event(), RecordingApplier()
    api = {("default", name): secret(name) for name in ("served", "other")}
    reads = []

    def read(resource, key):
        reads.append((resource.name, key))
        return api[key]

    running = Controller(
        cache,
        model.Options(ingress_class="edge"),
        layout_in(tmp_path),
        applier,
        Recorder(),
        Recorder(),
        Metrics(),
        HealthState(dict),
        SyncSettings(quiet_period=0.05, max_delay=0.3, min_reload_interval=0.1),
        stop,
        read=read,
    )
    for kind in NAMES:
        cache.replace(kind, [])
    cache.replace("secrets", list(api.values()))
    kind, referrer = naming("served")
    cache.replace(kind, [referrer])
    running.start()
    try:
        eventually(lambda: len(applier.applied) == 1)
        assert cache.get("secrets", ("default", "served"))["data"]
        other = cache.get("secrets", ("default", "other"))
        assert "data" not in other and "annotations" not in other["metadata"]
        assert other["metadata"]["name"] == "other"
        assert reads == []  # the initial list was whole

        cache.upsert(*naming("served", "other"))
        eventually(lambda: reads == [("secrets", ("default", "other"))])
        eventually(lambda: "data" in cache.get("secrets", ("default", "other")))

        cache.upsert(*naming())
        eventually(lambda: "data" not in cache.get("secrets", ("default", "served")))
        assert "data" not in cache.get("secrets", ("default", "other"))
    finally:
        stop.set()
        cache.wake()
