"""Faults: the API server down, hung or compacted; nginx -t refusing; SIGKILL mid-apply.

Each test has an edge of its own, since each breaks something.
"""

import os
import random
import signal
import time

import pytest
from agentlab import Edge, assert_complete, eventually, rule

NS = "default"


@pytest.fixture
def edge(tmp_path):
    with Edge(tmp_path) as started:
        started.apply_service("app", addresses=["127.0.0.2"])
        started.apply_ingress("app", [rule("app.example.com", "app")])
        started.agent.wait_ready()
        eventually(lambda: started.backend_of("app.example.com") == "web1")
        yield started


def restarts(edge, reason):
    return sum(
        value
        for (name, labels), value in edge.agent.metrics().items()
        if name == "edgeagent_watch_restarts_total" and ("reason", reason) in labels
    )


def test_api_down_nginx_keeps_serving_and_the_agent_resyncs(edge):
    edge.api.stop_serving()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # down for two seconds; traffic unaffected
        assert edge.backend_of("app.example.com") == "web1"
        time.sleep(0.1)
    status, health = edge.agent.healthz()
    assert status == 200  # the last good configuration still serves
    assert any(w["last_error"] for w in health["watches"].values())
    assert restarts(edge, "error") >= 5

    edge.api.start_serving()
    edge.apply_service("app", addresses=["127.0.0.3"])
    eventually(lambda: edge.backend_of("app.example.com") == "web2", timeout=15)
    eventually(
        lambda: all(w["last_error"] is None for w in edge.agent.healthz()[1]["watches"].values()),
        timeout=15,
    )


def test_api_down_at_start_serves_what_nginx_has_and_says_so(edge):
    """Readiness, liveness and synced are three answers: an agent started while the API is
    down is alive, ready (nginx serves the generation it found) and not synced; once the
    API is back it syncs."""
    live = os.readlink(edge.nginx.agent_dir / "current").removeprefix("gen-")
    edge.agent.stop()
    edge.api.stop_serving()
    edge.agent = edge.new_agent().start()
    ready = eventually(lambda: (answer := edge.agent.readyz())[0] == 200 and answer[1], timeout=20)
    assert (ready["generation"], ready["generation_source"]) == (live, "found at start")
    assert ready["synced"] is False
    assert edge.agent.healthz()[0] == 200
    assert edge.backend_of("app.example.com") == "web1"

    edge.api.start_serving()
    edge.apply_service("app", addresses=["127.0.0.3"])
    eventually(lambda: edge.backend_of("app.example.com") == "web2", timeout=30)
    eventually(lambda: edge.agent.readyz()[1]["synced"], timeout=30)
    assert edge.agent.readyz()[1]["generation_source"] == "applied"


def test_expired_watches_relist(edge):
    edge.api.expire()  # history compacted: every open watch ends with 410
    edge.apply_service("app", addresses=["127.0.0.4"])
    eventually(lambda: edge.backend_of("app.example.com") == "web3")
    assert restarts(edge, "expired") >= 5
    relists = [r for r in edge.agent.log_records() if r["message"] == "watch expired, relisting"]
    assert {r["resource"] for r in relists} >= {"ingresses", "services", "endpoint_slices"}


def test_a_silent_watch_is_restarted(tmp_path):
    with Edge(tmp_path, **{"watch-idle-timeout": 1}) as edge:
        edge.apply_service("app", addresses=["127.0.0.2"])
        edge.apply_ingress("app", [rule("app.example.com", "app")])
        edge.agent.wait_ready()
        edge.api.pause()  # accepts connections, answers nothing: watches fall silent
        eventually(lambda: restarts(edge, "silent") >= 5, timeout=10)
        assert edge.backend_of("app.example.com") == "web1"
        edge.api.resume()
        edge.apply_service("app", addresses=["127.0.0.5"])
        eventually(lambda: edge.backend_of("app.example.com") == "web4", timeout=15)


def test_rejected_candidate_keeps_the_last_good_configuration(edge):
    live = os.readlink(edge.nginx.agent_dir / "current")
    key = edge.nginx.key.read_bytes()
    edge.nginx.key.unlink()  # every candidate now fails nginx -t: no default key
    edge.apply_ingress("app", [rule("app.example.com", "app"), rule("new.example.com", "app")])
    eventually(lambda: edge.agent.metric("edgeagent_reloads_total", result="rejected") == 1)
    assert os.readlink(edge.nginx.agent_dir / "current") == live
    assert edge.backend_of("app.example.com") == "web1"
    assert edge.backend_of("new.example.com") == 404
    rejected = list(edge.nginx.agent_dir.glob("rejected-*"))
    assert len(rejected) == 1
    assert "default.key" in (rejected[0] / "nginx-t.txt").read_text()
    assert edge.agent.metric("edgeagent_last_reload_successful") == 0
    status, health = edge.agent.healthz()
    assert (status, health["last_sync"]["outcome"]) == (200, "rejected")
    eventually(
        lambda: [
            e.message
            for e in edge.core.list_namespaced_event(NS).items
            if e.reason == "ConfigRejected" and e.involved_object.name == "app"
        ]
    )

    edge.nginx.key.write_bytes(key)  # fixed; the next change goes through
    edge.apply_ingress(
        "app",
        [rule("app.example.com", "app"), rule("new.example.com", "app")],
        annotations={"touch": "1"},
    )
    edge.apply_service("app", addresses=["127.0.0.3"])
    eventually(lambda: edge.backend_of("new.example.com") == "web2")
    # nginx may serve the new generation a moment before the agent's confirmation records it.
    eventually(lambda: edge.agent.metric("edgeagent_last_reload_successful") == 1)


def test_sigkill_mid_apply_never_leaves_a_partial_configuration(tmp_path):
    """The agent killed during the sync of a change, then restarted; test_apply.py kills
    a bare applier many more times, at random points of the pipeline."""
    hosts = [f"h{n}.example.com" for n in range(30)]
    with Edge(tmp_path) as edge:
        edge.apply_service("app", addresses=["127.0.0.2"])
        for n in range(0, 30, 10):  # certificates make each generation slower to stage
            edge.apply_tls_secret(f"tls{n}", tuple(hosts[n : n + 10]))
        tls = [{"hosts": hosts[n : n + 10], "secretName": f"tls{n}"} for n in range(0, 30, 10)]
        edge.apply_ingress("app", [rule(h, "app") for h in hosts], tls=tls)
        edge.agent.wait_ready()
        rng = random.Random(7)
        debris_seen = 0
        for round_ in range(3):
            # A change, then SIGKILL somewhere inside its sync: staging, nginx -t, swap,
            # reload or confirmation.
            edge.apply_service("app", addresses=[f"127.0.0.{2 + round_ % 4}"])
            time.sleep(rng.uniform(0.05, 0.35))
            edge.agent.kill(signal.SIGKILL)
            entries = {p.name for p in edge.nginx.agent_dir.iterdir()}
            debris_seen += any(e.startswith((".staging-", ".current-")) for e in entries)
            assert_complete(edge.nginx.agent_dir, edge.nginx.main_conf)
            assert edge.get_tls("h1.example.com").status == 200  # nginx serves throughout
            edge.agent = edge.new_agent().start()
            edge.agent.wait_ready()
            expected = f"web{1 + round_ % 4}"
            eventually(
                lambda expected=expected: edge.backend_of("h1.example.com", tls=True) == expected
            )
            assert_complete(edge.nginx.agent_dir, edge.nginx.main_conf)
        entries = {p.name for p in edge.nginx.agent_dir.iterdir()}
        assert not any(e.startswith((".staging-", ".current-")) for e in entries)
        print(f"agent SIGKILL: {debris_seen} of 3 kills interrupted a write")
