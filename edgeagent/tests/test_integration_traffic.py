"""The daemon end to end: objects changed through the API change the traffic through nginx.

One edge (emulator, backends, nginx, `edgeagent run`) serves the whole module; each test
uses hosts and objects of its own.
"""

import socket
import time

import pytest
from agentlab import VIP, Edge, eventually, ingress, rule
from cryptography import x509
from support_http import request

import edgeagent
from edgeagent import resources

NS = "default"


@pytest.fixture(scope="module")
def notifications(tmp_path_factory):
    """A datagram socket standing for systemd's NOTIFY_SOCKET."""
    path = tmp_path_factory.mktemp("systemd") / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(0.2)
        yield str(path), receiver


@pytest.fixture(scope="module")
def edge(tmp_path_factory, notifications):
    env = {"NOTIFY_SOCKET": notifications[0]}
    with Edge(tmp_path_factory.mktemp("edge"), env=env) as started:
        started.agent.wait_ready()
        yield started


def test_systemd_hears_ready_after_the_first_sync(edge, notifications):
    _, receiver = notifications
    message = receiver.recv(4096).decode()
    assert message.splitlines()[0] == "READY=1"
    assert "STATUS=serving generation" in message


def test_ingress_create_change_delete(edge):
    edge.apply_service("life", addresses=["127.0.0.2"])
    edge.apply_service("life-v2", addresses=["127.0.0.3"], ports=[{"name": "web", "port": 81}])
    edge.apply_ingress("life", [rule("life.example.com", "life")])
    eventually(lambda: edge.backend_of("life.example.com") == "web1")
    answer = edge.get("life.example.com", "/a/b?c=d")
    assert answer.status == 200
    seen = answer.echo
    assert seen["target"] == "/a/b?c=d"
    assert seen["version"] == "HTTP/1.1"
    assert seen["headers"]["host"] == "life.example.com"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "http"

    # Changed: a second path, to a Service port given by name.
    edge.apply_ingress(
        "life",
        [
            {
                "host": "life.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "life", "port": {"number": 80}}},
                        },
                        {
                            "path": "/v2",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "life-v2", "port": {"name": "web"}}},
                        },
                    ]
                },
            }
        ],
    )
    eventually(lambda: edge.backend_of("life.example.com", "/v2/x") == "web2")
    assert edge.backend_of("life.example.com", "/v2x") == "web1"  # by path element
    assert edge.backend_of("other.example.com") == 404

    edge.networking.delete_namespaced_ingress("life", NS)
    eventually(lambda: edge.backend_of("life.example.com") == 404)
    # After the first candidate, validated whole, changes are validated as deltas.
    assert edge.agent.metric("edgeagent_validations_total", scope="delta") >= 2


def test_endpoint_changes_move_traffic(edge):
    edge.apply_service("pool", addresses=["127.0.0.2", "127.0.0.3"])
    edge.apply_ingress("pool", [rule("pool.example.com", "pool")])
    eventually(lambda: edge.backend_of("pool.example.com") in ("web1", "web2"))
    assert {edge.backend_of("pool.example.com") for _ in range(8)} == {"web1", "web2"}
    edge.settled()
    by_endpoints = edge.agent.metric("edgeagent_reloads_by_cause_total", cause="endpoints")

    edge.apply_service("pool", addresses=["127.0.0.4"], not_ready=["127.0.0.2", "127.0.0.3"])
    eventually(lambda: {edge.backend_of("pool.example.com") for _ in range(6)} == {"web3"})
    edge.settled()
    # The static mode reloads for endpoints, and says so (the dynamic mode never does).
    assert edge.agent.metric("edgeagent_reloads_by_cause_total", cause="endpoints") > by_endpoints

    edge.apply_service("pool", addresses=[], not_ready=["127.0.0.4"])
    eventually(lambda: edge.backend_of("pool.example.com") == 503)

    edge.apply_service("pool", addresses=["127.0.0.5"])
    eventually(lambda: edge.backend_of("pool.example.com") == "web4")
    edge.discovery.delete_namespaced_endpoint_slice("pool", NS)
    eventually(lambda: edge.backend_of("pool.example.com") == 503)


def served_certificate(edge, host):
    return edge.get_tls(host).certificate


def certificate(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_tls_secret_create_rotate_break(edge):
    host = "secure.example.com"
    edge.apply_service("secure", addresses=["127.0.0.2"])
    first = edge.apply_tls_secret("secure-tls", (host,))
    edge.apply_ingress(
        "secure", [rule(host, "secure")], tls=[{"hosts": [host], "secretName": "secure-tls"}]
    )
    eventually(lambda: served_certificate(edge, host) == certificate(first))
    answer = edge.get_tls(host)
    assert (answer.status, answer.backend, answer.echo["headers"]["x-forwarded-proto"]) == (
        200,
        "web1",
        "https",
    )

    rotated = edge.apply_tls_secret("secure-tls", (host,))
    eventually(lambda: served_certificate(edge, host) == certificate(rotated))

    # A broken Secret keeps the host on its last good certificate, and says so.
    edge.apply_tls_secret("secure-tls", (host,), data={"tls.crt": "garbage", "tls.key": "x"})
    eventually(
        lambda: any(
            e.reason == "Secret" and e.involved_object.name == "secure-tls"
            for e in edge.core.list_namespaced_event(NS).items
        )
    )
    assert served_certificate(edge, host) == certificate(rotated)

    # A host whose Secret never existed gets the default certificate.
    edge.apply_ingress(
        "nosecret",
        [rule("nosecret.example.com", "secure")],
        tls=[{"hosts": ["nosecret.example.com"], "secretName": "missing"}],
    )
    eventually(lambda: edge.get_tls("nosecret.example.com").status == 200)
    default = edge.nginx.certificate.read_bytes()
    assert served_certificate(edge, "nosecret.example.com") == certificate(default)


def lb_addresses(edge, name):
    status = edge.networking.read_namespaced_ingress(name, NS).status
    entries = (status.load_balancer.ingress or []) if status and status.load_balancer else []
    return [entry.ip or entry.hostname for entry in entries]


def test_status_is_published_and_withdrawn(edge):
    edge.apply_service("stat", addresses=["127.0.0.2"])
    edge.apply_ingress("stat", [rule("stat.example.com", "stat")])
    eventually(lambda: lb_addresses(edge, "stat") == [VIP])

    # Another controller's Ingress, with its own address: never touched.
    foreign = ingress("foreign", [rule("foreign.example.com", "stat")], ingress_class="other")
    edge.networking.create_namespaced_ingress(NS, foreign)
    edge.networking.patch_namespaced_ingress_status(
        "foreign", NS, {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}}
    )

    # Moved to another class: no longer ours, our address goes away.
    moved = ingress("stat", [rule("stat.example.com", "stat")], ingress_class="other")
    edge.networking.replace_namespaced_ingress("stat", NS, moved)
    eventually(lambda: lb_addresses(edge, "stat") == [])
    eventually(lambda: edge.backend_of("stat.example.com") == 404)
    assert lb_addresses(edge, "foreign") == ["192.0.2.7"]
    assert edge.backend_of("foreign.example.com") == 404


def test_two_edge_nodes_agree_on_the_status_and_do_not_fight(edge):
    second_nginx, second = edge.another_edge_node("edge2")
    second.wait_ready()
    edge.apply_service("both", addresses=["127.0.0.2"])
    edge.apply_ingress("both", [rule("both.example.com", "both")])
    eventually(lambda: lb_addresses(edge, "both") == [VIP])
    eventually(lambda: request(second_nginx.http_port, "both.example.com").backend == "web1")
    settled = edge.networking.read_namespaced_ingress("both", NS).metadata.resource_version
    time.sleep(1.5)  # both agents have synced and looked at the status by now
    again = edge.networking.read_namespaced_ingress("both", NS).metadata.resource_version
    assert again == settled
    patches = sum(
        agent.metric("edgeagent_status_updates_total", result="success")
        for agent in (edge.agent, second)
    )
    assert patches >= 1
    second.stop()


def test_invalid_ingress_is_skipped_with_event_metric_and_log(edge):
    edge.apply_service("valid", addresses=["127.0.0.2"])
    edge.apply_ingress("valid", [rule("valid.example.com", "valid")])
    edge.apply_ingress(
        "hostile",
        [rule("hostile.example.com", "valid", path="/x;} server { listen 9999")],
    )
    edge.apply_ingress(
        "snippet",
        [rule("snippet.example.com", "valid")],
        annotations={"nginx.ingress.kubernetes.io/server-snippet": "return 200 pwned;"},
    )
    eventually(lambda: edge.backend_of("valid.example.com") == "web1")
    events = eventually(
        lambda: (
            {
                (e.involved_object.name, e.reason)
                for e in edge.core.list_namespaced_event(NS).items
                if e.involved_object.name in ("hostile", "snippet")
            }
            >= {("hostile", "Invalid"), ("snippet", "Unsupported")}
        )
    )
    assert events
    assert edge.backend_of("hostile.example.com") == 404
    assert edge.backend_of("snippet.example.com") == 404
    assert edge.agent.metric("edgeagent_invalid_objects", reason="invalid") >= 1
    assert edge.agent.metric("edgeagent_invalid_objects", reason="unsupported") >= 1
    logged = [r for r in edge.agent.log_records() if r.get("name") == "hostile"]
    assert logged and logged[0]["namespace"] == NS and logged[0]["level"] == "warning"


def test_every_annotation_problem_is_an_event_and_warnings_keep_serving(edge):
    prefix = "nginx.ingress.kubernetes.io/"
    edge.apply_service("tuned", addresses=["127.0.0.2"])
    edge.apply_ingress(
        "tuned",
        [rule("tuned.example.com", "tuned")],
        annotations={
            prefix + "enable-access-log": "false",
            prefix + "hsts": "true",
            # Not a number: ingress-nginx served its default, and so does the edge, warning.
            prefix + "proxy-read-timeout": "60s",
        },
    )
    edge.apply_ingress(
        "refused",
        [rule("refused.example.com", "tuned")],
        annotations={
            prefix + "auth-url": "https://$remote_addr/oauth2/auth",
            prefix + "proxy-read-timeout": "0",
        },
    )
    eventually(lambda: edge.backend_of("tuned.example.com") == "web1")

    def messages(name: str, reason: str) -> set[str]:
        return {
            e.message
            for e in edge.core.list_namespaced_event(NS).items
            if e.involved_object.name == name and e.reason == reason
        }

    eventually(lambda: len(messages("tuned", "Warning")) == 3)
    assert any(prefix + "enable-access-log 'false'" in m for m in messages("tuned", "Warning"))
    assert any(prefix + "hsts 'true'" in m for m in messages("tuned", "Warning"))
    assert any(prefix + "proxy-read-timeout '60s'" in m for m in messages("tuned", "Warning"))
    eventually(
        lambda: (
            len(messages("refused", "Unsupported")) == 1
            and len(messages("refused", "Invalid")) == 1
        )
    )
    assert edge.backend_of("refused.example.com") == 404
    eventually(lambda: edge.agent.metric("edgeagent_invalid_objects", reason="warning") == 3)
    eventually(lambda: lb_addresses(edge, "tuned") == [VIP])
    assert lb_addresses(edge, "refused") == []


def test_changes_that_cannot_alter_the_output_cost_no_reload(edge):
    edge.apply_service("calm", addresses=["127.0.0.2"])
    edge.apply_ingress("calm", [rule("calm.example.com", "calm")])
    eventually(lambda: edge.backend_of("calm.example.com") == "web1")
    edge.settled()
    eventually(lambda: lb_addresses(edge, "calm") == [VIP])  # and its echo in the watch

    def count(name, **labels):
        return edge.agent.metric(name, **labels)

    reloads = count("edgeagent_reloads_total", result="success")
    applied = count("edgeagent_syncs_total", outcome="applied")
    unchanged = count("edgeagent_syncs_total", outcome="unchanged")
    edge.core.create_namespaced_service(NS, {"metadata": {"name": "unused"}, "spec": {}})
    edge.apply_tls_secret("unused-tls", ("unused.example.com",))
    edge.networking.patch_namespaced_ingress("calm", NS, {"metadata": {"labels": {"a": "b"}}})
    eventually(lambda: count("edgeagent_syncs_total", outcome="unchanged") > unchanged)
    time.sleep(0.3)  # room for a wrong sync to show up
    assert count("edgeagent_reloads_total", result="success") == reloads, edge.agent.log_tail(8)
    assert count("edgeagent_syncs_total", outcome="applied") == applied
    # One sync for the label (its bytes were unchanged); none for the Service or Secret.
    assert count("edgeagent_syncs_total", outcome="unchanged") == unchanged + 1


def test_a_burst_of_endpoint_changes_is_coalesced(edge):
    edge.apply_service("burst", addresses=["127.0.0.2"])
    edge.apply_ingress("burst", [rule("burst.example.com", "burst")])
    eventually(lambda: edge.backend_of("burst.example.com") == "web1")
    edge.settled()
    before = edge.agent.metric("edgeagent_reloads_total", result="success")
    addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    started = time.monotonic()
    for n in range(40):
        edge.apply_service("burst", addresses=[addresses[n % 4]])
    edge.apply_service("burst", addresses=["127.0.0.5"])
    burst = time.monotonic() - started
    eventually(lambda: edge.backend_of("burst.example.com") == "web4")
    edge.settled()
    # 41 changes (well under a second on a quiet machine); the agent's max delay is 0.5 s:
    # about one reload per half second of the burst, plus the last, not 41.
    reloads = edge.agent.metric("edgeagent_reloads_total", result="success") - before
    assert reloads <= 3 + burst / 0.5, (reloads, burst)


def test_health_and_metrics_describe_the_agent(edge):
    status, body = edge.agent.healthz()
    assert status == 200
    assert body["ready"] is True
    assert body["generation"] == edge.nginx.agent_dir.joinpath("current").readlink().name[4:]
    assert set(body["watches"]) == set(resources.NAMES)
    assert all(w["synced"] and w["seconds_since_contact"] < 10 for w in body["watches"].values())
    metrics = edge.agent.metrics()
    names = {name for name, _ in metrics}
    assert {
        "edgeagent_reloads_total",
        "edgeagent_last_reload_success_timestamp_seconds",
        "edgeagent_last_reload_successful",
        "edgeagent_config_hash",
        "edgeagent_sync_duration_seconds_count",
        "edgeagent_objects",
        "edgeagent_invalid_objects",
        "edgeagent_validations_total",
    } <= names
    assert metrics[("edgeagent_validations_total", (("scope", "full"),))] >= 1  # the first
    assert metrics[("edgeagent_last_reload_successful", ())] == 1
    assert metrics[("edgeagent_objects", (("kind", "ingresses"),))] >= 1
    assert metrics[("edgeagent_config_hash", ())] == int(body["generation"][:13], 16)
    assert metrics[("edgeagent_build_info", (("version", edgeagent.__version__),))] == 1
    assert metrics[("process_resident_memory_bytes", ())] > 0
