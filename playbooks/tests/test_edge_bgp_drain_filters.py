"""The filters of the frr role's drain and undrain (plugins/filter/edge_bgp_drain.py), on FRR's
JSON as vtysh prints it (test_frr_vip_drain.py runs them against real FRR)."""

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def filters():
    path = REPO / "plugins" / "filter" / "edge_bgp_drain.py"
    spec = importlib.util.spec_from_file_location("edge_bgp_drain", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()


ADVERTISED = json.dumps(
    {
        "bgpTableVersion": 3,
        "advertisedRoutes": {
            "198.18.183.100/32": {"path": "64600 64600 64600", "origin": "incomplete"},
            "198.18.183.101/32": {"path": "", "origin": "incomplete"},
            "198.18.7.0/24": {"path": "", "origin": "incomplete"},
        },
        "totalPrefixCounter": 3,
    }
)


def test_advertised_vips_with_their_as_path_lengths():
    advertised = filters()["edge_bgp_advertised"]
    vips = ["198.18.183.100/32", "198.18.183.101/32", "198.18.183.102/32"]
    assert advertised(ADVERTISED, vips) == {"198.18.183.100/32": 3, "198.18.183.101/32": 0}


def test_output_that_is_not_json_advertises_nothing():
    advertised = filters()["edge_bgp_advertised"]
    for output in ("", "% No such neighbor or address family", "[]"):
        assert advertised(output, ["198.18.183.100/32"]) == {}


def test_established_neighbours_of_every_address_family():
    summary = json.dumps(
        {
            "ipv4Unicast": {
                "peers": {
                    "198.18.182.1": {"state": "Established"},
                    "198.18.182.9": {"state": "Active"},
                }
            },
            "ipv6Unicast": {"peers": {"2001:db8:182:1::1": {"state": "Established"}}},
        }
    )
    established = filters()["edge_bgp_established"]
    assert established(summary) == ["198.18.182.1", "2001:db8:182:1::1"]
    assert established("") == []
