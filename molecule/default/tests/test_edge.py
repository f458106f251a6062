"""What only this scenario can check, next to the shared suite of a deployed edge
(tests/verify/, which molecule.yml's verifier runs too): the lab's apps behind the routes,
and where the VIP must be.

Runs twice in `molecule test`: on the converged edge, and after side_effect.yml stopped
keepalived on the VIP holder; then `failover.json` in the ephemeral directory names that node
(the shared suite reads it as well: keepalived is expected inactive there) and the VIP must
be on another one, with routing unchanged.
"""

import http.client
import json
import os
import pathlib
import sys

import pytest
import testinfra
import testinfra.utils.ansible_runner

# The shared suite's helpers (tests/verify/ is not a package).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "tests" / "verify"))

from deployment import eventually

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
EDGE_NODES = RUNNER.get_hosts("edge")

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
    (node,) = json.loads(FAILOVER_RECORD.read_text())["stopped"]
    return node


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


def test_vip_on_expected_node():
    stopped_on = keepalived_stopped_on()
    if stopped_on is None:
        expected = max(EDGE_NODES, key=lambda name: edge_vars(name)["keepalived_priority"])
    else:
        (expected,) = (name for name in EDGE_NODES if name != stopped_on)
    found = eventually(vip_holders, lambda holders: holders == [expected], SETTLE_SECONDS)
    assert found == [expected]


@pytest.mark.parametrize("app", ["web1", "web2"])
def test_host_routing_through_vip(app):
    answer = eventually(lambda: through_vip(app), lambda answer: answer[0] == 200, SETTLE_SECONDS)
    assert not isinstance(answer, OSError), answer
    status, body = answer
    assert status == 200
    assert body.startswith(f"{app} v1 {app}")


def test_backend_sees_the_requested_host():
    status, body = through_vip("web1", "/headers")
    assert status == 200
    assert json.loads(body)["headers"]["Host"] == "web1"
