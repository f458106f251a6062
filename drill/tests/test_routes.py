import json

import pytest

from drill import holders, routes

ALIASES = {"198.51.100.11": "edge1", "198.51.100.12": "edge2", "edge1": "edge1", "edge2": "edge2"}


def log(*records):
    return "".join(json.dumps({"t": t, "via": via}) + "\n" for t, via in records)


def test_the_router_log_becomes_each_nodes_announced_steps():
    text = log(
        (99.0, ["198.51.100.11", "198.51.100.12"]),
        (102.3, ["198.51.100.12"]),
        (105.5, ["198.51.100.11", "198.51.100.12"]),
    )
    steps = routes.transitions(text, ALIASES)
    assert steps == {
        "edge1": [(99.0, True), (102.3, False), (105.5, True)],
        "edge2": [(99.0, True)],
    }
    merged = holders.merge(steps)
    assert holders.holders_at(merged, 103.0) == {"edge2"}
    assert holders.vacant(merged, 99.0, 110.0) == []


def test_every_node_starts_withdrawn_and_an_unknown_next_hop_keeps_its_address():
    steps = routes.transitions(log((99.0, []), (100.0, ["198.51.100.13"])), ALIASES)
    assert steps["edge1"] == [(99.0, False)]
    assert steps["198.51.100.13"] == [(99.0, False), (100.0, True)]


def test_an_empty_log_is_refused():
    with pytest.raises(ValueError, match="did not start"):
        routes.transitions("", ALIASES)


def test_gateways_of_one_route_and_of_ecmp():
    ecmp = [{"dst": "198.51.100.100", "nexthops": [{"gateway": "b"}, {"gateway": "a"}]}]
    assert routes.gateways(ecmp) == ["a", "b"]
    assert routes.gateways([{"gateway": "a"}]) == ["a"]
    assert routes.gateways([]) == []
