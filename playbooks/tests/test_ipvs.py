"""The one reader of `ipvsadm -Ln` (plugins/module_utils/ipvs.py) and the VM lab's use of it
(molecule/lvs/vmlab.py, whose own tests need the VMs), on the cutover's director table: IPv4
and IPv6 services, fwmark services of both families, real servers in two services."""

import sys
from pathlib import Path

import pytest
from test_edge_cutover_filters import IPVSADM_LN

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / ".collections"), str(REPO / "molecule" / "lvs")]

import vmlab  # noqa: E402
from ansible_collections.edgeops.edge.plugins.module_utils import ipvs  # noqa: E402


def test_the_table_has_each_services_real_servers_with_weight_and_connections():
    assert ipvs.table(IPVSADM_LN) == {
        "TCP 198.51.100.102:80": {
            "198.51.100.21:80": ipvs.RealServer(90, 3, 41),
            "198.51.100.22:80": ipvs.RealServer(90, 2, 39),
            "198.51.100.31:80": ipvs.RealServer(20, 0, 7),
        },
        "TCP 198.51.100.102:443": {
            "198.51.100.21:443": ipvs.RealServer(90, 1, 4),
            "198.51.100.22:443": ipvs.RealServer(90, 0, 5),
            "198.51.100.31:443": ipvs.RealServer(20, 0, 0),
        },
        "TCP [2001:db8::102]:80": {
            "[2001:db8::21]:80": ipvs.RealServer(90, 0, 0),
            "[2001:db8::31]:80": ipvs.RealServer(0, 0, 0),
        },
        "FWM 52": {"198.51.100.41:0": ipvs.RealServer(1, 0, 0)},
        "FWM 53 IPv6": {"[2001:db8::41]:0": ipvs.RealServer(1, 0, 0)},
    }


def test_no_service_no_table():
    assert ipvs.table(IPVSADM_LN.split("TCP  ")[0]) == {}
    assert ipvs.table("") == {}


@pytest.mark.parametrize(
    "real_server,address",
    [("198.51.100.21:80", "198.51.100.21"), ("[2001:db8:0::31]:0", "2001:db8::31")],
)
def test_a_real_servers_address_is_canonical(real_server, address):
    assert ipvs.address(real_server) == address


def test_the_vm_labs_rows_sum_connections_over_services_with_the_smallest_weight():
    """IPv6 real servers too, by their address without brackets (its own parser skipped them)."""
    drained = IPVSADM_LN.replace(
        "198.51.100.31:443            Tunnel  20", "198.51.100.31:443 Tunnel 0"
    )
    assert vmlab.real_server_rows(drained) == {
        "198.51.100.21": (90, 4, 45),
        "198.51.100.22": (90, 2, 44),
        "198.51.100.31": (0, 0, 7),
        "198.51.100.41": (1, 0, 0),
        "2001:db8::21": (90, 0, 0),
        "2001:db8::31": (0, 0, 0),
        "2001:db8::41": (1, 0, 0),
    }
