"""Filters of the cutover (playbooks/cutover.yml, docs/seed-topology.md "Cutover"): what each
tier served during a step, from its own request counters, and whether the edge may take more.

Both tiers expose ingress-nginx's counters: the in-cluster controller (ingress-nginx, or
lab/seed_controller.py) on its status port, the edge's agent on its /metrics (edgeagent's
request_counts.py, the dynamic mode only). A step scrapes every node of both tiers before
and after its soak; a tier's figures are the sum over its nodes of what grew in between:

- requests: `nginx_ingress_controller_requests`, all statuses;
- errors: the 5xx among them. 4xx do not count: they are the clients' (an unknown host, a
  missing path), and both tiers answer the same ones for the same requests;
- overflow: the requests the edge's nginx could not count by label set
  (edgeagent_request_counters_overflow; 0 for ingress-nginx, which has no bound): when it
  grew, the figures miss requests, and the verdict is "insufficient";
- p50 and p99: from `nginx_ingress_controller_request_duration_seconds`' bucket deltas,
  interpolated within a bucket as Prometheus' histogram_quantile does.

A counter lower after than before (the node's nginx restarted) counts from 0, as
Prometheus' increase() does. Pure: text in, records out; the playbook does the I/O.
"""

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible_collections.edgeops.edge.plugins.module_utils import ipvs

REQUESTS = "nginx_ingress_controller_requests"
DURATION_BUCKET = "nginx_ingress_controller_request_duration_seconds_bucket"
AVAILABLE = "edgeagent_request_counters_available"
OVERFLOW = "edgeagent_request_counters_overflow"
# A tier's verdict needs this many requests in the step, else it is "insufficient".
DEFAULT_THRESHOLDS = {
    "max_error_points": 1.0,
    "max_p99_increase_percent": 50.0,
    "min_requests": 100,
}
# The IPVS schedulers whose choice of real server follows its weight for every new connection,
# so that the tiers' weights are their shares (Linux, net/netfilter/ipvs/ip_vs_*.c): wrr
# (weighted round robin), wlc (least active*256+inactive connections per weight) and sed
# ((active+1) per weight). The others ignore weights beyond quiescing 0 (rr, lc, dh), send to
# any idle server whatever its weight (nq), fill the heaviest server first (fo, ovf), stick to
# the destination address (lblc, lblcr), or hash the client's address into a table (sh,
# mh): their shares are of clients, not of connections.
WEIGHTED_SCHEDULERS = ("sed", "wlc", "wrr")


def _samples(text, node):
    """(name, labels as a sorted tuple) -> value of one scrape (Prometheus text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        families = list(text_string_to_metric_families(str(text)))
    except ValueError as error:
        raise AnsibleFilterError(f"{node}: not a Prometheus exposition: {error}") from None
    # The parser names a counter's samples NAME_total (OpenMetrics) whether the page has
    # NAME (ingress-nginx's, typed counter) or not (the edge's, untyped): one name for both.
    return {
        (sample.name.removesuffix("_total"), tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def _growth(before, after):
    """What each series of `after` grew by since `before`; a reset counts from 0."""
    grown = {}
    for key, value in after.items():
        previous = before.get(key, 0.0)
        grown[key] = value - previous if value >= previous else value
    return grown


def _quantile(quantile, buckets):
    """histogram_quantile over {upper bound: cumulative count}; None without requests."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    rank = quantile * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower  # as Prometheus: the highest finite bound
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def edge_cutover_tier(scrapes, tier, require_counters=False):
    """What a tier served in a step. `scrapes`: one {"node", "before", "after"} per node of
    the tier, the texts of its metrics page; `require_counters`: the edge's agent must say
    its counters are nginx's (edgeagent_request_counters_available 1), else the reason."""
    requests, errors, client_errors, overflow = 0.0, 0.0, 0.0, 0.0
    buckets = {}
    for scrape in scrapes:
        node = scrape.get("node", "?")
        before, after = _samples(scrape["before"], node), _samples(scrape["after"], node)
        # Both scrapes: counters missing at the start would make the whole count "grown".
        available = (before.get((AVAILABLE, ())), after.get((AVAILABLE, ())))
        if require_counters and available != (1.0, 1.0):
            raise AnsibleFilterError(
                f"{tier} node {node} has no request counters "
                f"({AVAILABLE} is not 1 at both ends of the step): the plain mode (no Lua) "
                "counts nothing, so a cutover cannot compare it; run the agent in the dynamic mode "
                "(edgeagent_upstreams: dynamic)"
            )
        for (name, labels), value in _growth(before, after).items():
            label = dict(labels)
            if name == REQUESTS:
                requests += value
                status = label.get("status", "")
                errors += value if status.startswith("5") else 0.0
                client_errors += value if status.startswith("4") else 0.0
            elif name == OVERFLOW:
                overflow += value
            elif name == DURATION_BUCKET:
                bound = float(label["le"])
                buckets[bound] = buckets.get(bound, 0.0) + value
    return {
        "tier": tier,
        "nodes": sorted(scrape.get("node", "?") for scrape in scrapes),
        "requests": int(requests),
        "errors": int(errors),
        "client_errors": int(client_errors),
        "overflow": int(overflow),
        "error_rate": errors / requests if requests else 0.0,
        "p50_seconds": _quantile(0.5, buckets),
        "p99_seconds": _quantile(0.99, buckets),
    }


def edge_cutover_scrapes(pages, nodes):
    """The scrapes of `nodes` for edge_cutover_tier, from {"__cutover_before": {node: text},
    "__cutover_after": {...}} (playbooks/cutover_scrape.yml)."""
    before, after = pages.get("__cutover_before") or {}, pages.get("__cutover_after") or {}
    return [{"node": n, "before": before.get(n, ""), "after": after.get(n, "")} for n in nodes]


def edge_cutover_thresholds(thresholds=None):
    """`thresholds` (cutover_thresholds, perhaps only some keys, e.g. from -e) over
    DEFAULT_THRESHOLDS; an unknown key is refused, as a typo would otherwise go unused."""
    given = dict(thresholds or {})
    unknown = sorted(set(given) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise AnsibleFilterError(
            f"cutover_thresholds: unknown {', '.join(unknown)} "
            f"(known: {', '.join(sorted(DEFAULT_THRESHOLDS))})"
        )
    return {**DEFAULT_THRESHOLDS, **given}


def edge_cutover_verdict(edge, cluster, thresholds=None, baseline=None):
    """Whether the edge did no worse than the in-cluster tier in a step: "pass", "fail"
    (with the reasons) or "insufficient" (too few requests to say), and the `limits` it
    applied. `baseline`: the cluster tier's figures of an earlier step, compared with when
    this step sent it too few (at 100 % it gets none)."""
    limits = edge_cutover_thresholds(thresholds)
    minimum = int(limits["min_requests"])
    reference = cluster
    if cluster["requests"] < minimum and baseline is not None:
        reference = baseline
    reasons = []
    if edge["requests"] < minimum:
        reasons.append(f"the edge served {edge['requests']} requests, fewer than {minimum}")
    if reference["requests"] < minimum:
        reasons.append(
            f"the in-cluster tier served {reference['requests']} requests, fewer than {minimum}"
        )
    for name, figures in (("the edge", edge), ("the in-cluster tier", reference)):
        if figures.get("overflow", 0) > 0:
            reasons.append(
                f"{name} did not count {figures['overflow']} requests by label set "
                f"({OVERFLOW} grew: more label sets than its bound)"
            )
    if reasons:
        return {
            "verdict": "insufficient",
            "reasons": reasons,
            "reference": reference,
            "limits": limits,
        }
    points = (edge["error_rate"] - reference["error_rate"]) * 100
    if points > float(limits["max_error_points"]):
        reasons.append(
            f"the edge's 5xx rate {edge['error_rate'] * 100:.2f} % is {points:.2f} points "
            f"above the in-cluster {reference['error_rate'] * 100:.2f} % "
            f"(at most {limits['max_error_points']})"
        )
    edge_p99, reference_p99 = edge["p99_seconds"], reference["p99_seconds"]
    if edge_p99 is not None and reference_p99 is not None and reference_p99 > 0:
        increase = (edge_p99 / reference_p99 - 1) * 100
        if increase > float(limits["max_p99_increase_percent"]):
            reasons.append(
                f"the edge's p99 {edge_p99 * 1000:.1f} ms is {increase:.0f} % above the "
                f"in-cluster {reference_p99 * 1000:.1f} ms "
                f"(at most {limits['max_p99_increase_percent']} %)"
            )
    return {
        "verdict": "fail" if reasons else "pass",
        "reasons": reasons,
        "reference": reference,
        "limits": limits,
    }


def edge_cutover_weights(percent, edge_servers=1, cluster_servers=1):
    """The IPVS weight of each real server of the two tiers so that the edge's
    `edge_servers` take `percent` of the new connections and the `cluster_servers` the
    rest: IPVS shares by weight per real server, so each tier's weight scales with the
    other tier's size. A weight 0 takes no new connection and lets established ones finish."""
    percent, edges, clusters = int(percent), int(edge_servers), int(cluster_servers)
    if not 0 <= percent <= 100:
        raise AnsibleFilterError(f"a cutover step must be 0-100 %, got {percent}")
    return {"edge": percent * max(clusters, 1), "cluster": (100 - percent) * max(edges, 1)}


def edge_cutover_refusals(migrate_report):
    """The Ingresses `edgeagent migrate --json` would refuse ("refused" verdicts), as
    "namespace/name: reason" lines; empty: the first step may go."""
    refused = []
    for entry in migrate_report.get("ingresses") or []:
        if entry.get("verdict") == "refused":
            reasons = [
                finding.get("reason") or finding.get("key")
                for finding in entry.get("annotations") or []
                if finding.get("status") == "refused"
            ]
            reasons += list(entry.get("problems") or [])
            refused.append(
                f"{entry.get('namespace')}/{entry.get('name')}: {'; '.join(reasons) or 'refused'}"
            )
    return refused


def edge_cutover_fronts(hosts, hostvars, groups, defaults=None):
    """One record per director (of `hosts`) with a keepalived_lvs_cutover_edge_group, for
    playbooks/validate.yml: the edge group and its members, the cluster node group and its
    members, the percent and the scheduler as given (else `defaults`: the keepalived role's
    keepalived_lvs_cutover_edge_percent and keepalived_lvs_scheduler, as {"percent": ...,
    "scheduler": ...}), and the schedulers that honour weights."""
    defaults = defaults or {}
    records = []
    for host in hosts:
        variables = hostvars[host]
        group = str(variables.get("keepalived_lvs_cutover_edge_group") or "")
        if not group:
            continue
        cluster_group = str(variables.get("keepalived_lvs_cluster_node_group") or "")
        records.append(
            {
                "director": host,
                "group": group,
                "group_exists": group in groups,
                "members": sorted(groups.get(group, [])),
                "cluster_group": cluster_group,
                "cluster_members": sorted(groups.get(cluster_group, [])),
                "percent": variables.get(
                    "keepalived_lvs_cutover_edge_percent", defaults.get("percent")
                ),
                "scheduler": str(
                    variables.get("keepalived_lvs_scheduler", defaults.get("scheduler"))
                ),
                "weighted_schedulers": list(WEIGHTED_SCHEDULERS),
            }
        )
    return records


def edge_cutover_ipvs_table(ipvsadm_ln):
    """`ipvsadm -Ln` (or with --exact) -> {service: {real server: weight}}, as ipvsadm spells
    them (plugins/module_utils/ipvs.py)."""
    return ipvs.weights(ipvsadm_ln)


def edge_cutover_weight_mismatches(ipvsadm_ln, tiers, weights):
    """What differs between a director's IPVS table (`ipvsadm -Ln` text) and the cutover's
    weights: `tiers` {"edge": {node: address}, "cluster": {node: address}}, `weights` the
    weight of each tier's real servers (edge_cutover_weights). The cutover's services are
    those that hold a real server of either tier (the keepalived role gives every virtual
    server both tiers); each must hold every node of both at its tier's weight. One line per
    difference, naming the service, the node, the seen and the expected weight; empty: the
    kernel has the weights keepalived.conf says."""
    expected = {
        str(ipaddress.ip_address(str(address).split("/")[0])): (node, int(weights[tier]))
        for tier in ("edge", "cluster")
        for node, address in sorted((tiers.get(tier) or {}).items())
    }
    table = edge_cutover_ipvs_table(ipvsadm_ln)
    services = {
        service: {ipvs.address(server): (server, weight) for server, weight in rows.items()}
        for service, rows in table.items()
    }
    services = {s: rows for s, rows in services.items() if set(rows) & set(expected)}
    if not services:
        return [
            f"no IPVS virtual server holds a real server of either tier "
            f"({', '.join(sorted(node for node, _ in expected.values()))})"
        ]
    mismatches = []
    for service, rows in sorted(services.items()):
        for address, (node, weight) in sorted(expected.items(), key=lambda e: e[1][0]):
            if address not in rows:
                mismatches.append(
                    f"{service}: {node} ({address}) is missing, expected weight {weight}"
                )
            elif rows[address][1] != weight:
                server, seen = rows[address]
                # keepalived keeps a real server that fails its check (inhibit_on_failure) or
                # is drained in the table at weight 0.
                why = " (failing its health check, or drained)" if seen == 0 else ""
                mismatches.append(
                    f"{service}: {node} ({server}) has weight {seen}{why}, expected {weight}"
                )
    return mismatches


class FilterModule:
    def filters(self):
        return {
            "edge_cutover_tier": edge_cutover_tier,
            "edge_cutover_scrapes": edge_cutover_scrapes,
            "edge_cutover_verdict": edge_cutover_verdict,
            "edge_cutover_thresholds": edge_cutover_thresholds,
            "edge_cutover_weights": edge_cutover_weights,
            "edge_cutover_refusals": edge_cutover_refusals,
            "edge_cutover_fronts": edge_cutover_fronts,
            "edge_cutover_ipvs_table": edge_cutover_ipvs_table,
            "edge_cutover_weight_mismatches": edge_cutover_weight_mismatches,
        }
