"""lab/cluster_node.py: what a lab cluster node runs, from the lab's own manifests, and the
configurations it writes, checked by FRR's and nftables' own parsers."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

LAB = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("cluster_node", LAB / "cluster_node.py")
cluster_node = importlib.util.module_from_spec(_spec)
sys.modules["cluster_node"] = cluster_node  # dataclasses look their module up there
_spec.loader.exec_module(cluster_node)

MANIFESTS = list(yaml.safe_load_all((LAB / "manifests" / "cluster-nodes.yaml").read_text()))


def objects(kind):
    return [obj for obj in MANIFESTS if obj and obj["kind"] == kind]


def lab_plan(name, address):
    node = next(obj for obj in objects("Node") if obj["metadata"]["name"] == name)
    return cluster_node.plan(node, address, objects("EndpointSlice"), objects("Service"))


def test_each_node_runs_its_own_pods_and_forwards_its_nodeport_to_them():
    cnode1 = lab_plan("cnode1", "198.51.100.31/24")
    assert cnode1.asn == 64512
    assert cnode1.pod_cidr == "198.19.1.0/24"
    assert cnode1.pods == (
        cluster_node.Pod("api-cnode1", "api", "198.19.1.10", 8080),
        cluster_node.Pod("shop-cnode1", "shop", "198.19.1.20", 8080),
    )
    # Only shop is a NodePort Service; api (ClusterIP) has no NodePort.
    assert cnode1.node_ports == (cluster_node.NodePort(30080, 8080, ("198.19.1.20",)),)
    cnode2 = lab_plan("cnode2", "198.51.100.32/24")
    assert cnode2.pod_cidr == "198.19.2.0/24"
    assert [pod.address for pod in cnode2.pods] == ["198.19.2.10", "198.19.2.20"]


def test_a_pod_outside_the_nodes_pod_cidr_is_refused():
    node = next(obj for obj in objects("Node") if obj["metadata"]["name"] == "cnode1")
    endpoint_slice = {
        "metadata": {"labels": {cluster_node.SERVICE_NAME_LABEL: "api"}},
        "ports": [{"port": 8080}],
        "endpoints": [{"addresses": ["198.19.2.99"], "nodeName": "cnode1"}],
    }
    with pytest.raises(ValueError, match=r"198\.19\.2\.99 is not in 198\.19\.1\.0/24"):
        cluster_node.plan(node, "198.51.100.31/24", [endpoint_slice], [])


def test_the_status_is_the_kubelets_address_and_readiness():
    status = cluster_node.node_status("cnode1", "198.51.100.31")["status"]
    assert {"type": "InternalIP", "address": "198.51.100.31"} in status["addresses"]
    assert status["conditions"] == [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]


def test_frr_config_passes_vtysh_and_announces_the_pod_cidr_through_the_route_map(tmp_path):
    config = cluster_node.frr_config(lab_plan("cnode1", "198.51.100.31/24"))
    path = tmp_path / "frr.conf"
    path.write_text(config)
    subprocess.run(["vtysh", "--dryrun", "--inputfile", str(path)], check=True)
    assert "router bgp 64512\n" in config
    assert "  network 198.19.1.0/24\n" in config
    assert "ip prefix-list POD-CIDR seq 10 permit 198.19.1.0/24\n" in config
    assert "  neighbor EDGES route-map ANNOUNCE out\n" in config
    assert " bgp listen range 198.51.100.0/24 peer-group EDGES\n" in config


def test_bgpd_accepts_the_peers_of_the_nodes_own_network_as_in_molecules_scenario():
    node = lab_plan("cnode1", "198.18.0.31/24")
    assert (node.address, node.peer_range) == ("198.18.0.31", "198.18.0.0/24")
    config = cluster_node.frr_config(node)
    assert " bgp router-id 198.18.0.31\n" in config
    assert " bgp listen range 198.18.0.0/24 peer-group EDGES\n" in config


def test_bgp_off_puts_a_deny_all_entry_in_front_of_the_announcement_and_on_removes_it():
    assert cluster_node.bgp_commands(announce=False) == [
        "-c",
        "configure",
        "-c",
        "route-map ANNOUNCE deny 5",
    ]
    assert cluster_node.bgp_commands(announce=True)[-1] == "no route-map ANNOUNCE deny 5"


def test_nft_ruleset_parses_and_dnats_each_nodeport_to_the_local_pods(tmp_path):
    node = lab_plan("cnode1", "198.51.100.31/24")
    two_pods = cluster_node.NodePort(30081, 8080, ("198.19.1.20", "198.19.1.21"))
    node = cluster_node.NodePlan(**{**vars(node), "node_ports": (*node.node_ports, two_pods)})
    ruleset = cluster_node.nft_ruleset(node)
    path = tmp_path / "ruleset.nft"
    path.write_text(ruleset)
    subprocess.run(["nft", "--check", "--file", str(path)], check=True)
    assert "fib daddr type local tcp dport 30080 dnat to 198.19.1.20:8080\n" in ruleset
    assert (
        "tcp dport 30081 dnat to numgen random mod 2 map { 0 : 198.19.1.20, 1 : 198.19.1.21 }:8080"
        in ruleset
    )


def test_bgpd_is_turned_on_in_debians_daemons_file():
    assert cluster_node.daemons_with_bgpd("zebra=yes\nbgpd=no\nospfd=no\n") == (
        "zebra=yes\nbgpd=yes\nospfd=no\n"
    )


def test_the_nodes_network_is_read_from_its_interface():
    assert cluster_node.interface_of("127.0.0.1") == "127.0.0.1/8"
