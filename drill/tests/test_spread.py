import pytest

from drill import spread
from drill.analysis import Request
from drill.tests.bgp_synthetic import WINDOW, bgp_requests
from drill.tests.synthetic import FAULT, RESTORE


def test_shares_before_during_and_after_the_fault():
    summary = spread.summarize(WINDOW, bgp_requests(), "edge1", 100.0)
    assert summary["target"] == "edge1"
    assert summary["share_before"] == {"edge1": 50, "edge2": 50}
    # 8 of the 150 probes, edge1's, failed before the router dropped it; edge2 answered the rest.
    assert summary["share_after"] == {"edge2": 142}
    # edge2 alone until the router sends edge1 flows again at 105.5, then every other one each.
    assert summary["share_after_failback"] == {"edge1": 62, "edge2": 88}


def test_a_break_counts_against_the_node_that_served_the_connection_last():
    summary = spread.summarize(WINDOW, bgp_requests(), "edge1", 100.0)
    assert summary["broken_by_node"] == {"edge1": 1}
    assert summary["broken_surviving"] == 0
    assert summary["failback_broken_surviving"] == 0
    # Plain ECMP: when edge1 comes back, the router moves flows of edge2 too.
    rehashed = spread.summarize(WINDOW, bgp_requests(survivor_broken_at=(105.505,)), "edge1", 100)
    assert rehashed["failback_broken_by_node"] == {"edge2": 1}
    assert rehashed["failback_broken_surviving"] == 1


def test_a_break_before_any_answer_has_an_unknown_node():
    requests = [Request("long", FAULT + 1, 1.0, False, None, "reset", 7, True)]
    assert spread.broken_by_node(requests, FAULT, RESTORE) == {"unknown": 1}
    assert spread.broken_surviving(requests, FAULT, RESTORE, "edge1") == 1


def test_bgp_failover_is_the_end_of_the_failures_on_the_lost_node():
    failover = spread.bgp_failover(WINDOW, bgp_requests(), "edge1")
    assert failover["holder_before"] == "edge1"
    assert failover["holder_after"] == "edge2"
    assert failover["failover"] is True
    # The last failed probe started at 102.28; the next one (102.30) answered 2 ms later.
    assert failover["gap_ms"] == pytest.approx(302.0)
    # The router sends edge1 flows again from 105.5: its first one (105.52) answered 2 ms later.
    assert failover["failback_ms"] == pytest.approx(522.0)


def test_a_fault_without_failures_that_moves_the_flows_has_no_gap():
    requests = [
        Request("new", 100 + i * 0.02, 2.0, True, "edge1" if 100 + i * 0.02 < FAULT else "edge2")
        for i in range(400)
    ]
    assert spread.bgp_failover(WINDOW, requests, "edge1")["gap_ms"] == 0.0
    assert spread.bgp_failover(WINDOW, requests, "edge1")["failover"] is True


def test_a_target_that_keeps_answering_has_not_failed_over():
    requests = [Request("new", 100 + i * 0.02, 2.0, True, "edge1") for i in range(400)]
    failover = spread.bgp_failover(WINDOW, requests, "edge1")
    assert failover["failover"] is False
    assert failover["gap_ms"] is None
