"""The cutover's comparison (plugins/filter/edge_cutover.py): what each tier served in a step
from its counters' growth, its p50/p99 from the histogram's bucket deltas, and the verdict
against the thresholds. Scrapes are the two tiers' real formats: ingress-nginx's (typed
counter, as lab/seed_controller.py writes it) and the edge agent's (untyped)."""

import importlib.util
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parents[2]
# The filters import the collection's module_utils by its collection name (.collections/).
sys.path.insert(0, str(REPO / ".collections"))
_spec = importlib.util.spec_from_file_location(
    "edge_cutover", REPO / "plugins" / "filter" / "edge_cutover.py"
)
cutover = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cutover)
sys.path.insert(0, str(REPO / "lab"))
import seed_controller  # noqa: E402  (the lab's stand-in writes the in-cluster page)

BUCKETS = seed_controller.BUCKETS


def cluster_page(requests: dict[str, list[float]]) -> str:
    """ingress-nginx's page (typed counter) for these durations by status."""
    counters = seed_controller.Counters()
    for status, durations in requests.items():
        for seconds in durations:
            counters.count((status, "GET", "web1", "default", "web1", "web1"), seconds)
    return counters.exposition()


def edge_page(requests: dict[str, list[float]], available: int = 1, overflow: int = 0) -> str:
    """The edge agent's page (untyped counter, as request_counts.families writes it)."""
    lines = [
        f"edgeagent_request_counters_available {available}",
        f"edgeagent_request_counters_overflow {overflow}",
    ]
    labels = 'host="web1",ingress="web1",method="GET",namespace="default",service="web1"'
    lines.append("# TYPE nginx_ingress_controller_requests untyped")
    for status, durations in requests.items():
        lines.append(
            f'nginx_ingress_controller_requests{{{labels},status="{status}"}} {len(durations)}'
        )
    lines.append("# TYPE nginx_ingress_controller_request_duration_seconds histogram")
    for status, durations in requests.items():
        for bound in (*BUCKETS, float("inf")):
            count = sum(1 for d in durations if d <= bound)
            le = "+Inf" if bound == float("inf") else format(bound, "g")
            name = "nginx_ingress_controller_request_duration_seconds_bucket"
            lines.append(f'{name}{{{labels},status="{status}",le="{le}"}} {count}')
    return "\n".join(lines) + "\n"


def test_a_tier_is_what_grew_during_the_step_summed_over_its_nodes():
    before = cluster_page({"200": [0.002] * 50})
    after = cluster_page(
        {"200": [0.002] * 50 + [0.02] * 140, "502": [0.003] * 2, "404": [0.001] * 8}
    )
    other = cluster_page({"200": [0.002] * 50})
    tier = cutover.edge_cutover_tier(
        [
            {"node": "node1", "before": before, "after": after},
            {"node": "node2", "before": "", "after": other},  # nothing before: all new
        ],
        "in-cluster",
    )
    assert tier["requests"] == 140 + 2 + 8 + 50
    assert tier["errors"] == 2  # 5xx only
    assert tier["client_errors"] == 8  # 4xx: counted apart, not errors
    assert tier["error_rate"] == pytest.approx(2 / 200)
    assert tier["nodes"] == ["node1", "node2"]
    # 60 of the 200 at most 10 ms (node2's 50, the 404s and 502s), the 140 others in
    # (10, 25] ms: both quantiles interpolated there, as histogram_quantile does.
    assert tier["p50_seconds"] == pytest.approx(0.01 + 0.015 * 40 / 140)
    assert tier["p99_seconds"] == pytest.approx(0.01 + 0.015 * 138 / 140)


def test_a_restarted_node_counts_from_zero():
    before = edge_page({"200": [0.01] * 500})
    after = edge_page({"200": [0.01] * 120})  # nginx restarted: the counter went down
    tier = cutover.edge_cutover_tier([{"node": "edge1", "before": before, "after": after}], "edge")
    assert tier["requests"] == 120


def test_the_quantiles_follow_prometheus_histogram_quantile():
    # 100 requests: 90 in (0.01, 0.025], 10 in (0.5, 1]: p50 inside the first, p99 in the second.
    buckets = {0.01: 0, 0.025: 90, 0.5: 90, 1.0: 100, float("inf"): 100}
    assert cutover._quantile(0.5, buckets) == pytest.approx(0.01 + 0.015 * 50 / 90)
    assert cutover._quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * 9 / 10)
    assert cutover._quantile(0.99, {10.0: 0, float("inf"): 5}) == 10.0  # highest finite bound
    assert cutover._quantile(0.5, {0.1: 0, float("inf"): 0}) is None


def test_the_edge_in_the_plain_mode_is_refused_with_the_reason():
    page = edge_page({"200": [0.01]}, available=0)
    with pytest.raises(AnsibleFilterError, match=r"plain mode \(no Lua\) counts nothing"):
        cutover.edge_cutover_tier(
            [{"node": "edge1", "before": page, "after": page}], "edge", require_counters=True
        )


def test_an_edge_without_counters_at_the_start_of_the_step_is_refused():
    """Counters that appear during the step (the agent came up) would count all as grown."""
    before = edge_page({"200": [0.01] * 500}, available=0)
    after = edge_page({"200": [0.01] * 500})
    with pytest.raises(AnsibleFilterError, match="edge node edge1 has no request counters"):
        cutover.edge_cutover_tier(
            [{"node": "edge1", "before": before, "after": after}], "edge", require_counters=True
        )


def test_requests_not_counted_by_label_set_give_no_verdict():
    before = edge_page({"200": [0.01] * 100}, overflow=3)
    after = edge_page({"200": [0.01] * 400}, overflow=10)
    scrapes = [{"node": "edge1", "before": before, "after": after}]
    edge = cutover.edge_cutover_tier(scrapes, "edge", require_counters=True)
    assert edge["overflow"] == 7
    verdict = cutover.edge_cutover_verdict(edge, tier(1800, 0, 0.01), THRESHOLDS)
    assert verdict["verdict"] == "insufficient"
    assert verdict["reasons"] == [
        "the edge did not count 7 requests by label set "
        "(edgeagent_request_counters_overflow grew: more label sets than its bound)"
    ]


def test_a_page_that_is_no_exposition_is_a_clear_error():
    with pytest.raises(AnsibleFilterError, match="edge1: not a Prometheus exposition"):
        cutover.edge_cutover_tier(
            [{"node": "edge1", "before": "", "after": "<html>502 Bad Gateway</html>\n{"}], "edge"
        )


def tier(requests: int, errors: int, p99: float | None) -> dict:
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "p99_seconds": p99,
    }


THRESHOLDS = {"max_error_points": 1.0, "max_p99_increase_percent": 50, "min_requests": 100}


def test_an_edge_no_worse_than_the_cluster_passes():
    verdict = cutover.edge_cutover_verdict(tier(200, 1, 0.030), tier(1800, 9, 0.025), THRESHOLDS)
    assert verdict["verdict"] == "pass" and verdict["reasons"] == []


def test_more_5xx_on_the_edge_than_allowed_fails_with_the_figures():
    verdict = cutover.edge_cutover_verdict(tier(200, 5, 0.02), tier(1800, 9, 0.02), THRESHOLDS)
    assert verdict["verdict"] == "fail"
    assert verdict["reasons"] == [
        "the edge's 5xx rate 2.50 % is 2.00 points above the in-cluster 0.50 % (at most 1.0)"
    ]


def test_a_slower_p99_than_allowed_fails():
    verdict = cutover.edge_cutover_verdict(tier(200, 0, 0.080), tier(1800, 0, 0.040), THRESHOLDS)
    assert verdict["verdict"] == "fail"
    assert "p99 80.0 ms is 100 % above the in-cluster 40.0 ms" in verdict["reasons"][0]


def test_too_few_requests_give_no_verdict():
    verdict = cutover.edge_cutover_verdict(tier(20, 0, 0.01), tier(1800, 0, 0.01), THRESHOLDS)
    assert verdict["verdict"] == "insufficient"
    assert verdict["reasons"] == ["the edge served 20 requests, fewer than 100"]


def test_at_100_percent_the_edge_is_compared_with_the_last_step_that_measured_the_cluster():
    baseline = tier(900, 0, 0.02)
    verdict = cutover.edge_cutover_verdict(
        tier(2000, 0, 0.021), tier(0, 0, None), THRESHOLDS, baseline=baseline
    )
    assert verdict["verdict"] == "pass" and verdict["reference"] == baseline


def test_partial_thresholds_take_the_defaults_and_the_verdict_says_which_applied():
    """cutover_thresholds from -e with some keys only (the playbook reads min_requests)."""
    verdict = cutover.edge_cutover_verdict(
        tier(200, 1, 0.030), tier(1800, 9, 0.025), {"max_p99_increase_percent": 80}
    )
    assert verdict["verdict"] == "pass"
    assert verdict["limits"] == {**cutover.DEFAULT_THRESHOLDS, "max_p99_increase_percent": 80}


def test_an_unknown_threshold_is_refused():
    with pytest.raises(AnsibleFilterError, match=r"unknown min_request \(known: max_error"):
        cutover.edge_cutover_thresholds({"min_request": 10})


@pytest.mark.parametrize(
    ("percent", "edges", "clusters", "weights"),
    [
        (0, 2, 3, {"edge": 0, "cluster": 200}),
        (10, 1, 1, {"edge": 10, "cluster": 90}),
        (50, 2, 3, {"edge": 150, "cluster": 100}),  # 2 x 150 = 3 x 100: half each
        (100, 2, 3, {"edge": 300, "cluster": 0}),
    ],
)
def test_weights_per_step_give_the_tiers_their_share(percent, edges, clusters, weights):
    assert cutover.edge_cutover_weights(percent, edges, clusters) == weights


def test_a_step_outside_0_to_100_is_refused():
    with pytest.raises(AnsibleFilterError, match="0-100 %, got 150"):
        cutover.edge_cutover_weights(150)


def test_the_migrate_gate_names_each_refused_ingress_and_why():
    report = {
        "ingresses": [
            {
                "namespace": "shop",
                "name": "ok",
                "verdict": "served",
                "annotations": [],
                "problems": [],
            },
            {
                "namespace": "shop",
                "name": "lua",
                "verdict": "refused",
                "annotations": [
                    {
                        "key": "nginx.ingress.kubernetes.io/configuration-snippet",
                        "status": "refused",
                        "reason": "snippets are not served",
                    },
                ],
                "problems": [],
            },
        ]
    }
    assert cutover.edge_cutover_refusals(report) == ["shop/lua: snippets are not served"]
    assert cutover.edge_cutover_refusals({"ingresses": report["ingresses"][:1]}) == []


# A director's `ipvsadm -Ln --exact` during a cutover at 10 % (2 cluster nodes, 1 edge node:
# weights 20 and 90), as ipvsadm 1.31 prints it: an IPv4 service with persistence, an IPv6
# one, and fwmark services (IPv4, IPv6) of another VIP group.
IPVSADM_LN = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.51.100.102:80 wlc
  -> 198.51.100.21:80             Route   90     3          41
  -> 198.51.100.22:80             Route   90     2          39
  -> 198.51.100.31:80             Route   20     0          7
TCP  198.51.100.102:443 wlc persistent 300
  -> 198.51.100.21:443            Tunnel  90     1          4
  -> 198.51.100.22:443            Tunnel  90     0          5
  -> 198.51.100.31:443            Tunnel  20     0          0
TCP  [2001:db8::102]:80 wrr
  -> [2001:db8::21]:80            Masq    90     0          0
  -> [2001:db8::31]:80            Masq    0      0          0
FWM  52 wlc
  -> 198.51.100.41:0              Route   1      0          0
FWM  53 IPv6 sed
  -> [2001:db8::41]:0             Route   1      0          0
"""

TIERS = {
    "edge": {"edge1": "198.51.100.31/24"},
    "cluster": {"node1": "198.51.100.21/24", "node2": "198.51.100.22/24"},
}


def test_the_ipvs_table_has_each_services_real_servers_and_weights():
    assert cutover.edge_cutover_ipvs_table(IPVSADM_LN) == {
        "TCP 198.51.100.102:80": {
            "198.51.100.21:80": 90,
            "198.51.100.22:80": 90,
            "198.51.100.31:80": 20,
        },
        "TCP 198.51.100.102:443": {
            "198.51.100.21:443": 90,
            "198.51.100.22:443": 90,
            "198.51.100.31:443": 20,
        },
        "TCP [2001:db8::102]:80": {"[2001:db8::21]:80": 90, "[2001:db8::31]:80": 0},
        "FWM 52": {"198.51.100.41:0": 1},
        "FWM 53 IPv6": {"[2001:db8::41]:0": 1},
    }


def test_an_empty_ipvs_table():
    assert cutover.edge_cutover_ipvs_table(IPVSADM_LN.split("TCP  ")[0]) == {}


def test_the_weights_as_rendered_leave_nothing_to_report():
    weights = cutover.edge_cutover_weights(10, 1, 2)  # {"edge": 20, "cluster": 90}
    assert cutover.edge_cutover_weight_mismatches(IPVSADM_LN, TIERS, weights) == []


def test_each_real_server_off_its_weight_is_named_with_the_seen_and_expected_weight():
    weights = cutover.edge_cutover_weights(50, 1, 2)  # {"edge": 100, "cluster": 50}
    assert cutover.edge_cutover_weight_mismatches(IPVSADM_LN, TIERS, weights) == [
        "TCP 198.51.100.102:443: edge1 (198.51.100.31:443) has weight 20, expected 100",
        "TCP 198.51.100.102:443: node1 (198.51.100.21:443) has weight 90, expected 50",
        "TCP 198.51.100.102:443: node2 (198.51.100.22:443) has weight 90, expected 50",
        "TCP 198.51.100.102:80: edge1 (198.51.100.31:80) has weight 20, expected 100",
        "TCP 198.51.100.102:80: node1 (198.51.100.21:80) has weight 90, expected 50",
        "TCP 198.51.100.102:80: node2 (198.51.100.22:80) has weight 90, expected 50",
    ]


def test_ipv6_real_servers_are_matched_by_address_and_a_missing_one_is_named():
    tiers = {"edge": {"edge1": "2001:db8:0::31/64"}, "cluster": {"node1": "2001:db8::21/64"}}
    table = IPVSADM_LN.replace(
        "  -> [2001:db8::21]:80            Masq    90     0          0\n", ""
    )
    assert cutover.edge_cutover_weight_mismatches(table, tiers, {"edge": 10, "cluster": 90}) == [
        "TCP [2001:db8::102]:80: edge1 ([2001:db8::31]:80) has weight 0 "
        "(failing its health check, or drained), expected 10",
        "TCP [2001:db8::102]:80: node1 (2001:db8::21) is missing, expected weight 90",
    ]


def test_no_service_with_the_tiers_real_servers_is_a_mismatch():
    table = IPVSADM_LN.split("TCP  ")[0]
    assert cutover.edge_cutover_weight_mismatches(table, TIERS, {"edge": 0, "cluster": 1}) == [
        "no IPVS virtual server holds a real server of either tier (edge1, node1, node2)"
    ]


def test_the_cutover_fronts_give_each_directors_tiers_percent_and_scheduler():
    groups = {"edge": ["dir1", "dir2", "edge1"], "new_edges": ["edge1"], "seed_nodes": ["n1"]}
    hostvars = {
        "dir1": {
            "keepalived_lvs_cutover_edge_group": "new_edges",
            "keepalived_lvs_cluster_node_group": "seed_nodes",
            "keepalived_lvs_cutover_edge_percent": 10,
        },
        "dir2": {"keepalived_lvs_cutover_edge_group": "gone", "keepalived_lvs_scheduler": "rr"},
        "edge1": {},
    }
    fronts = cutover.edge_cutover_fronts(
        groups["edge"], hostvars, groups, {"percent": 0, "scheduler": "wlc"}
    )
    assert fronts == [
        {
            "director": "dir1",
            "group": "new_edges",
            "group_exists": True,
            "members": ["edge1"],
            "cluster_group": "seed_nodes",
            "cluster_members": ["n1"],
            "percent": 10,
            "scheduler": "wlc",
            "weighted_schedulers": ["sed", "wlc", "wrr"],
        },
        {
            "director": "dir2",
            "group": "gone",
            "group_exists": False,
            "members": [],
            "cluster_group": "",
            "cluster_members": [],
            "percent": 0,
            "scheduler": "rr",
            "weighted_schedulers": ["sed", "wlc", "wrr"],
        },
    ]
