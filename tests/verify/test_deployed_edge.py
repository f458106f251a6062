"""A deployed edge, checked on each node and through its VIPs (docs/verify.md).

The same suite after site.yml on real hosts (`make verify INVENTORY=...`, through paramiko),
at the end of `make lab`, and in molecule's verify. Every failure names the node and what is
wrong with it; conftest.py writes them to reports/verify-<time>.json.
"""

from __future__ import annotations

import http.client
import json
from functools import partial

import edgestate
import pytest
from ansible_collections.edgeops.edge.plugins.module_utils import ipvs
from deployment import eventually, node_names, node_var
from kubernetes import client, config

KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
KEEPALIVED_CONFIG_TEST = "/usr/local/libexec/keepalived/config-test"
# The generation nginx serves (architecture.md, "Edge node file layout").
EDGE_CONF = "/etc/nginx/edgeagent/current/edge.conf"
# A name no Ingress serves: nginx's default server answers it with 404.
UNKNOWN_HOST = "unknown.invalid"


def read(nodes, name: str, path: str) -> str:
    result = nodes[name].run("cat %s", path)
    assert result.rc == 0, f"{name}: cannot read {path}: {result.stderr.strip()}"
    return result.stdout


def vrrp_groups(nodes) -> dict[str, tuple[edgestate.VrrpGroup, list[str]]]:
    """vrrp_instance name -> (its group, the nodes that run it), from each keepalived.conf."""
    groups: dict[str, tuple[edgestate.VrrpGroup, list[str]]] = {}
    for name in node_names():
        for group in edgestate.vrrp_groups(read(nodes, name, KEEPALIVED_CONF)).values():
            groups.setdefault(group.name, (group, []))[1].append(name)
    return groups


def holders(nodes, group: edgestate.VrrpGroup, members: list[str]) -> list[str]:
    """The members holding the group's first VIP on its VRRP interface (not on lo)."""
    query = f"ip -4 -o address show dev {group.interface}"
    return [
        name for name in members if edgestate.holds(nodes[name].check_output(query), group.vips[0])
    ]


def through_vip(vip: str, host_header: str, path: str = "/") -> int:
    """The status of one request through the VIP on a new connection, as a client."""
    connection = http.client.HTTPConnection(vip, 80, timeout=3)
    try:
        connection.request("GET", path, headers={"Host": host_header, "Connection": "close"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def curl(host, url: str) -> tuple[str, str]:
    """(HTTP status, body) of a GET from the node itself; status 000 when nothing answered."""
    result = host.run("curl -s -m 3 -w '\\n%%{http_code}' %s", url)
    body, _, status = result.stdout.rpartition("\n")
    return status, body


def test_unit_enabled_and_in_its_state(nodes, settings, node, unit):
    service = nodes[node].service(unit)
    expected = "inactive" if unit in settings.stopped.get(node, []) else "active"
    state = nodes[node].run("systemctl is-active %s.service", unit).stdout.strip()
    assert state == expected, f"{node}: {unit}.service is {state}, expected {expected}"
    assert service.is_enabled, f"{node}: {unit}.service is not enabled (it would not boot)"


def test_nginx_config_valid(nodes, node):
    result = nodes[node].run("nginx -t -q")
    assert result.rc == 0, f"{node}: nginx -t fails: {result.stderr.strip()}"


def test_keepalived_config_valid(nodes, node):
    result = nodes[node].run("%s %s", KEEPALIVED_CONFIG_TEST, KEEPALIVED_CONF)
    assert result.rc == 0, f"{node}: {KEEPALIVED_CONF} is rejected: {result.stderr.strip()}"


def test_nginx_healthz_answers(nodes, node):
    status, _ = curl(nodes[node], "http://127.0.0.1/healthz")
    assert status == "200", f"{node}: nginx's /healthz on 127.0.0.1:80 answers {status}"


def test_agent_synced_and_healthy(nodes, settings, node):
    """/healthz 200 (the first sync applied and confirmed), every watch synced, nginx
    serving the generation the agent says it applied, and /metrics served."""
    health_url = f"http://{node_var(node, 'edgeagent_health_listen', 'edgeagent')}/healthz"
    status_url = (
        f"http://{node_var(node, 'edgeagent_status_listen', 'edgeagent')}/edgeagent/generation"
    )

    def state() -> tuple[str, dict, str]:
        status, body = curl(nodes[node], health_url)
        report = json.loads(body) if status in ("200", "503") else {}
        return status, report, curl(nodes[node], status_url)[1].strip()

    status, report, serving = eventually(
        state,
        lambda s: s[0] == "200" and all(w["synced"] for w in s[1]["watches"].values()),
        settings.settle_seconds,
    )
    assert status == "200", f"{node}: the agent's /healthz answers {status}: {report}"
    unsynced = sorted(kind for kind, watch in report["watches"].items() if not watch["synced"])
    assert not unsynced, f"{node}: the agent's watches of {', '.join(unsynced)} are not synced"
    assert report["generation"] == serving, (
        f"{node}: the agent applied generation {report['generation']}, nginx serves "
        f"{serving or 'none (its status server does not answer)'}"
    )
    metrics_status, metrics = curl(nodes[node], health_url.replace("/healthz", "/metrics"))
    assert metrics_status == "200" and "edgeagent_" in metrics, (
        f"{node}: the agent's /metrics answers {metrics_status} without edgeagent_ metrics"
    )


def test_one_holder_per_vip_group(nodes, settings):
    groups = vrrp_groups(nodes)
    assert groups, f"no node runs a vrrp_instance ({KEEPALIVED_CONF})"
    wrong = {}
    for name, (group, members) in sorted(groups.items()):
        found = eventually(
            partial(holders, nodes, group, members), lambda h: len(h) == 1, settings.settle_seconds
        )
        if len(found) != 1:
            wrong[name] = f"{group.vips[0]} held by {', '.join(found) or 'no node'}"
    assert not wrong, f"VIP groups without exactly one holder: {wrong}"


def test_ipvs_table_lists_the_real_servers(nodes, node):
    """The kernel's IPVS table is what keepalived.conf asks for: every virtual service with
    every real server, none of them at weight 0 (a failing check or a drain); no table where
    the node runs no LVS."""
    expected = edgestate.virtual_servers(read(nodes, node, KEEPALIVED_CONF))
    if not expected:
        table = nodes[node].run("ipvsadm -Ln")
        leftover = ipvs.weights(table.stdout) if table.rc == 0 else {}
        assert not leftover, f"{node}: no virtual_server in its config, but IPVS has {leftover}"
        return
    actual = ipvs.weights(nodes[node].check_output("ipvsadm -Ln"))
    problems = []
    for service, real_servers in sorted(expected.items()):
        listed = actual.get(service)
        if listed is None:
            problems.append(f"{service} missing")
            continue
        missing = sorted(real_servers - listed.keys())
        zero = sorted(server for server, weight in listed.items() if weight == 0)
        if missing:
            problems.append(f"{service} lacks {', '.join(missing)}")
        if zero:
            problems.append(f"{service} gives weight 0 to {', '.join(zero)}")
    assert not problems, f"{node}: IPVS table: {'; '.join(problems)}"


def test_served_hosts_answer_through_every_vip(nodes, settings):
    groups = vrrp_groups(nodes)
    first = node_names()[0]
    served = edgestate.served_hosts(read(nodes, first, EDGE_CONF))
    assert served, f"{first}: {EDGE_CONF} serves no host"
    sample = edgestate.sample(served, settings.sample_hosts)
    failed = {}
    for group, _ in groups.values():
        for vip in group.vips:
            for host in sample:
                answer = eventually(
                    partial(through_vip, vip, host), lambda s: s < 500, settings.settle_seconds
                )
                # 404 is the default server's answer: the host is not routed.
                if isinstance(answer, OSError) or answer >= 500 or answer == 404:
                    failed[f"{host} via {vip}"] = str(answer)
    assert not failed, f"served hosts that do not answer through the VIP: {failed}"


def test_unknown_host_gets_the_default_server(nodes, settings):
    for group, _ in vrrp_groups(nodes).values():
        for vip in group.vips:
            answer = eventually(
                partial(through_vip, vip, UNKNOWN_HOST),
                lambda status: status == 404,
                settings.settle_seconds,
            )
            assert answer == 404, f"Host: {UNKNOWN_HOST} via {vip} answers {answer}, not 404"


GATEWAY_GROUP, GATEWAY_VERSION = "gateway.networking.k8s.io", "v1"


def gateway_objects(settings, plural: str) -> list[dict]:
    """Every object of a Gateway API kind, from the API server the edge serves."""
    api = client.CustomObjectsApi(config.new_client_from_config(settings.kubeconfig))
    listed = api.list_cluster_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, plural)
    return listed["items"]


def condition(conditions: list[dict] | None, kind: str) -> bool:
    return any(c["type"] == kind and c["status"] == "True" for c in conditions or ())


def served_gateways(settings) -> list[dict]:
    """The Gateways of the class the edge serves (edgeagent_gateway_class)."""
    served_class = node_var(node_names()[0], "edgeagent_gateway_class", "edgeagent")
    return [
        g
        for g in gateway_objects(settings, "gateways")
        if g["spec"].get("gatewayClassName") == served_class
    ]


@pytest.mark.gateway_api
def test_gateways_publish_every_vip(nodes, settings):
    vips = {vip for group, _ in vrrp_groups(nodes).values() for vip in group.vips}

    def missing() -> dict[str, list[str]]:
        return {
            f"{g['metadata']['namespace']}/{g['metadata']['name']}": sorted(
                vips - {a.get("value") for a in (g.get("status") or {}).get("addresses") or ()}
            )
            for g in served_gateways(settings)
            if condition((g.get("status") or {}).get("conditions"), "Programmed")
        }

    result = eventually(missing, lambda found: not any(found.values()), settings.settle_seconds)
    assert not isinstance(result, OSError), f"the API server does not answer: {result}"
    unpublished = {gateway: vips for gateway, vips in result.items() if vips}
    assert not unpublished, f"programmed Gateways whose status.addresses lack VIPs: {unpublished}"


@pytest.mark.gateway_api
def test_gateway_routes_answer_through_every_vip(nodes, settings):
    gateways = served_gateways(settings)
    served = {(g["metadata"]["namespace"], g["metadata"]["name"]) for g in gateways}
    requests = {}
    for route in gateway_objects(settings, "httproutes"):
        namespace = route["metadata"]["namespace"]
        accepted = any(
            (p["parentRef"].get("namespace", namespace), p["parentRef"]["name"]) in served
            and condition(p.get("conditions"), "Accepted")
            for p in (route.get("status") or {}).get("parents") or ()
        )
        request = edgestate.route_request(route)
        if accepted and request:
            requests[f"{namespace}/{route['metadata']['name']}"] = request
    failed = {}
    for group, _ in vrrp_groups(nodes).values():
        for vip in group.vips:
            for name, (host, path) in requests.items():
                probe = partial(through_vip, vip, host, path)
                answer = eventually(probe, lambda s: s < 500, settings.settle_seconds)
                # 404 is the default server's answer: the route is not served.
                if isinstance(answer, OSError) or answer >= 500 or answer == 404:
                    failed[f"HTTPRoute {name}: {host}{path} via {vip}"] = str(answer)
    assert not failed, f"accepted HTTPRoutes that do not answer through the VIP: {failed}"
