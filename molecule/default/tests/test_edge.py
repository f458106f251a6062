"""The converged edge, checked from outside (the host, as a client) and inside (each node).

Runs twice in `molecule test`: on the converged edge, and after side_effect.yml stopped
keepalived on the VIP holder; then `failover.json` in the ephemeral directory names that node
and the VIP must be on another one, with routing unchanged.
"""

import http.client
import json
import os
import pathlib
import time

import pytest
import testinfra
import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
EDGE_NODES = RUNNER.get_hosts("edge")
testinfra_hosts = EDGE_NODES

FAILOVER_RECORD = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "failover.json"
# Settling time for what converges asynchronously (the agent's first sync after a restart,
# VRRP election): a bound on waiting, not a performance assertion (bench/ measures those).
SETTLE_SECONDS = 30


def edge_vars(name: str) -> dict:
    return RUNNER.get_variables(name)


VIP_GROUP = edge_vars(EDGE_NODES[0])["keepalived_instances"][0]
VIP = VIP_GROUP["virtual_ipaddresses"][0]
# On the VRRP interface only: LVS-DR real servers also carry the VIP on lo.
VIP_QUERY = f"ip -4 -o address show dev {VIP_GROUP['interface']} to {VIP}/32"


def keepalived_stopped_on() -> str | None:
    """The node side_effect.yml stopped keepalived on, or None before the fault."""
    if not FAILOVER_RECORD.exists():
        return None
    return json.loads(FAILOVER_RECORD.read_text())["keepalived_stopped_on"]


def node(name: str) -> testinfra.host.Host:
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def vip_holders() -> list[str]:
    return [name for name in EDGE_NODES if node(name).check_output(VIP_QUERY).strip()]


def through_vip(host_header: str, path: str = "/") -> tuple[int, str]:
    """One request through the VIP on a new connection, as a client outside the edge."""
    connection = http.client.HTTPConnection(VIP, 80, timeout=3)
    try:
        connection.request("GET", path, headers={"Host": host_header})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def eventually(probe, accept):
    """probe()'s first result that accept() takes within SETTLE_SECONDS, else its last one
    (an OSError when the last attempt failed: refused or timed out while the VIP moved)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        try:
            result = probe()
        except OSError as error:
            result = error
        if (not isinstance(result, OSError) and accept(result)) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.mark.parametrize("unit", ["nginx", "edgeagent", "keepalived"])
def test_service_enabled_and_running(host, unit):
    service = host.service(unit)
    assert service.is_enabled
    stopped_by_side_effect = unit == "keepalived" and host.backend.host == keepalived_stopped_on()
    assert service.is_running is not stopped_by_side_effect


def test_nginx_config_valid(host):
    host.run_expect([0], "nginx -t -q")


def test_keepalived_config_valid(host):
    # The role's `keepalived --config-test` wrapper: keepalived 2.2.7 kills itself with SIGTERM
    # when it checks a script, so its exit status alone says nothing (see the script).
    host.run_expect(
        [0], "/usr/local/libexec/keepalived/config-test /etc/keepalived/keepalived.conf"
    )


def test_nginx_healthz_answers(host):
    status = host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/healthz")
    assert status == "200"


def test_agent_healthz_and_metrics_served(host):
    assert host.check_output("curl -sf http://127.0.0.1:10254/healthz")
    metrics = host.check_output("curl -sf http://127.0.0.1:10254/metrics")
    assert "edgeagent_" in metrics


def test_vip_on_exactly_one_node():
    holders = eventually(vip_holders, lambda holders: len(holders) == 1)
    assert len(holders) == 1, f"VIP {VIP} held by {holders}"


def test_vip_on_expected_node():
    stopped_on = keepalived_stopped_on()
    if stopped_on is None:
        expected = max(EDGE_NODES, key=lambda name: edge_vars(name)["keepalived_priority"])
    else:
        (expected,) = (name for name in EDGE_NODES if name != stopped_on)
    assert eventually(vip_holders, lambda holders: holders == [expected]) == [expected]


@pytest.mark.parametrize("app", ["web1", "web2"])
def test_host_routing_through_vip(app):
    answer = eventually(lambda: through_vip(app), lambda answer: answer[0] == 200)
    assert not isinstance(answer, OSError), answer
    status, body = answer
    assert status == 200
    assert body.startswith(f"{app} v1 {app}")


def test_backend_sees_the_requested_host():
    status, body = through_vip("web1", "/headers")
    assert status == 200
    assert json.loads(body)["headers"]["Host"] == "web1"


def test_unknown_host_gets_404():
    status, _ = through_vip("unknown.example")
    assert status == 404
