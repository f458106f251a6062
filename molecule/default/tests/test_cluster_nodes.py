"""The lab's cluster nodes in this scenario (issue 15): both backend modes through the VIP,
and the BGP check of the lab (lab/bgp_withdrawal.yml) on the edge nodes.

- api.lab.example is the Service api, served in the endpoints mode: to its pod IPs, which the
  edges reach only by the routes they learn from the cluster nodes by BGP;
- shop.lab.example is the Service shop, in the nodeport mode (its annotation): to the Nodes'
  NodePort, which each cluster node forwards to its own pod.

The BGP check withdraws the pod routes and waits until `edgeagent doctor` and the metric
`edgeagent_backend_unreachable` name api (and not shop), then announces them again and waits
until doctor is ok, on every edge node: on the second verify too, after side_effect.yml
stopped keepalived on one of them (the agent and FRR on it still run; doctor's vip check
says it holds no VIP, a backup's state).
"""

import os
import pathlib
import subprocess
import sys

import pytest
from test_edge import SETTLE_SECONDS, through_vip

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "tests" / "verify"))

from deployment import eventually

PROJECT = pathlib.Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
INVENTORY_DIRECTORY = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
# Bounds on waiting, not performance: the check itself waits up to 2 minutes for each state.
BGP_CHECK_SECONDS = 900


@pytest.mark.parametrize(
    ("host", "app"),
    [("api.lab.example", "api"), ("shop.lab.example", "shop")],
    ids=["endpoints-mode", "nodeport-mode"],
)
def test_cluster_node_pods_answer_through_vip(host, app):
    answer = eventually(lambda: through_vip(host), lambda answer: answer[0] == 200, SETTLE_SECONDS)
    assert not isinstance(answer, OSError), answer
    status, body = answer
    assert status == 200
    # "<app> v1 <pod>": a pod of a cluster node, e.g. api-cnode1.
    assert body.startswith(f"{app} v1 {app}-cnode"), body


def test_bgp_withdrawal_is_named_by_doctor_and_the_metric(capsys):
    run = subprocess.run(
        [
            str(pathlib.Path(sys.executable).parent / "ansible-playbook"),
            f"--inventory={INVENTORY_DIRECTORY}",
            str(PROJECT / "lab" / "bgp_withdrawal.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=BGP_CHECK_SECONDS,
        check=False,
    )
    # What doctor and the metric said, in the verify output whether the check passed or not.
    with capsys.disabled():
        print(f"\nlab/bgp_withdrawal.yml:\n{run.stdout}{run.stderr}")
    assert run.returncode == 0
