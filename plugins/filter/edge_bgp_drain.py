"""Filters for the frr role's drain and undrain (roles/frr/tasks/drain.yml, undrain.yml), which
read FRR's own state rather than wait a fixed time:
`stdout | edgeops.edge.edge_bgp_advertised(prefixes)` gives the VIPs advertised to a neighbour,
`stdout | edgeops.edge.edge_bgp_established` the neighbours whose session is up."""

import json


def _json(output) -> dict:
    """vtysh's JSON answer; anything else (no such neighbour yet, FRR starting) as nothing."""
    try:
        parsed = json.loads(output or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def edge_bgp_advertised(output, prefixes):
    """{prefix: number of ASNs on its AS path} for each of `prefixes` that
    `show bgp <afi> unicast neighbors X advertised-routes json` lists: 0 announced as is,
    frr_vip_prepend or more prepended."""
    advertised = _json(output).get("advertisedRoutes", {})
    return {
        prefix: len(str(advertised[prefix].get("path", "")).split())
        for prefix in prefixes
        if prefix in advertised
    }


def edge_bgp_established(output):
    """The neighbours in state Established in `show bgp summary json` (every address family)."""
    return sorted(
        {
            address
            for family in _json(output).values()
            if isinstance(family, dict)
            for address, peer in family.get("peers", {}).items()
            if peer.get("state") == "Established"
        }
    )


class FilterModule:
    def filters(self):
        return {
            "edge_bgp_advertised": edge_bgp_advertised,
            "edge_bgp_established": edge_bgp_established,
        }
