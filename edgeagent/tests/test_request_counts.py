"""Request counters (issue 19): a real nginx in the dynamic mode counts requests in its shared
dict (lua/edgeagent_requests.lua), and the agent's collector exports them with
ingress-nginx's names and labels (request_counts.py, request_collector.py).

One site: a route table host (a.example.com), a rendered server (r.example.com: an
annotation keeps it out of the table) with a slow path, and a Service whose only endpoint
refuses connections (502). Its nginx counts at most SERIES_MAX label sets, few enough for
the last test to reach the bound.
"""

import socket
import threading

import pytest
from agentlab import eventually
from edgeagent.cache import key_of
from edgeagent.control import Control
from edgeagent.request_collector import RequestCollector
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support_http import Backends, free_port, request
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service

from edgeagent import dynamic, model, request_counts

SERIES_MAX = 8
SLOW_SECONDS = 0.3


class Site:
    def __init__(self, rendered, control: Control, ingresses: list[dict]) -> None:
        self.rendered = rendered
        self.control = control
        self.registry = CollectorRegistry()
        self.registry.register(
            RequestCollector(
                control.request_counts,
                lambda: rendered.model.upstreams,
                lambda: {key_of(i): i for i in ingresses},
            )
        )

    def get(self, host: str, target: str = "/", **headers: str):
        return request(self.rendered.ports.http, host, target, headers=headers)

    def counts(self) -> request_counts.Counts:
        return request_counts.parse(self.control.request_counts())

    def exported(self) -> dict:
        """name -> [(labels, value)] of the agent's exposition."""
        text = generate_latest(self.registry).decode()
        found: dict = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found.setdefault(sample.name, []).append((sample.labels, sample.value))
        return found


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    backends, runner = Backends(), NginxRunner()
    try:
        app, slow = backends.start("app1"), backends.start("slow1")
        ingresses = [
            ingress(
                "app",
                rule("a.example.com", path("/", "app")),
                rule("broken.example.com", path("/", "broken")),
                rule("*.w.example.com", path("/", "app")),
            ),
            ingress(
                "rendered",
                rule("r.example.com", path("/slow", "slow")),
                rule("*.rw.example.com", path("/slow", "slow")),
                annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "2m"},
            ),
        ]
        inputs = model.Inputs(
            ingresses=ingresses,
            services=[service("app"), service("slow"), service("broken")],
            endpoint_slices=[
                endpoint_slice("app", [(app.host, True)], app.port),
                endpoint_slice("slow", [(slow.host, True)], slow.port),
                endpoint_slice("broken", [("127.0.0.1", True)], free_port()),
            ],
        )
        rendered = render_site(
            tmp_path_factory.mktemp("counts"),
            inputs,
            dynamic_mode=True,
            request_series_max=SERIES_MAX,
        )
        assert "a.example.com" in dynamic.state_of(rendered.model).routes
        assert "*.w.example.com" in dynamic.state_of(rendered.model).routes
        assert "r.example.com" not in dynamic.state_of(rendered.model).routes
        assert "*.rw.example.com" not in dynamic.state_of(rendered.model).routes
        runner.start(rendered)
        control = Control(str(rendered.directory / "dynamic"), f"127.0.0.1:{rendered.ports.status}")
        control.push(dynamic.state_of(rendered.model), full=True)
        yield Site(rendered, control, ingresses)
    finally:
        runner.stop_all()
        backends.stop_all()


def by_key(counts: request_counts.Counts) -> dict[tuple[str, str, str], request_counts.Series]:
    return {(s.status, s.method, s.host): s for s in counts.series}


def test_statuses_hosts_and_backends_are_counted(site):
    assert [site.get("a.example.com").status for _ in range(3)] == [200] * 3
    assert site.get("broken.example.com").status == 502
    assert site.get("r.example.com", "/nope").status == 404
    assert site.get("r.example.com", "/slow", **{"X-Echo-Delay": str(SLOW_SECONDS)}).status == 200
    expected = {
        ("200", "GET", "a.example.com"): 3,  # a route table host: the request's Host
        ("502", "GET", "broken.example.com"): 1,
        ("404", "GET", "r.example.com"): 1,  # a rendered server: its name
        ("200", "GET", "r.example.com"): 1,
    }

    def counted():
        found = by_key(site.counts())
        return all(k in found and found[k].count == n for k, n in expected.items()) and found

    found = eventually(counted)  # the log phase runs after the answer is sent
    assert found[("404", "GET", "r.example.com")].backend == ""  # nginx answered itself
    slow = found[("200", "GET", "r.example.com")]
    # Durations only grow on a busy machine: the slow request is in no bucket below its delay.
    assert slow.duration_sum >= SLOW_SECONDS
    below = [i for i, bound in enumerate(request_counts.BUCKETS) if bound < SLOW_SECONDS]
    assert [slow.buckets[i] for i in below] == [0] * len(below)
    assert slow.buckets[-1] == slow.count == 1
    for series in found.values():
        assert list(series.buckets) == sorted(series.buckets)  # cumulative
        assert series.buckets[-1] == series.count
    # The status server's own requests (these reads) are not clients': never counted.
    assert all(s.host != "edgeagent-status" for s in found.values())


def test_the_agent_exports_them_with_ingress_nginx_labels(site):
    exported = eventually(lambda: site.exported().get(request_counts.REQUESTS))
    labels = {tuple(sorted(sample.items())): value for sample, value in exported}
    route_host = {
        "status": "200",
        "method": "GET",
        "host": "a.example.com",
        "namespace": "default",
        "ingress": "app",
        "service": "app",
    }
    assert labels[tuple(sorted(route_host.items()))] >= 3
    broken = {**route_host, "status": "502", "host": "broken.example.com", "service": "broken"}
    assert labels[tuple(sorted(broken.items()))] >= 1
    rendered = {**route_host, "host": "r.example.com", "ingress": "rendered", "service": "slow"}
    assert labels[tuple(sorted(rendered.items()))] >= 1
    unrouted = {**rendered, "status": "404", "namespace": "", "ingress": "", "service": ""}
    assert labels[tuple(sorted(unrouted.items()))] >= 1
    metrics = site.exported()
    assert metrics["edgeagent_request_counters_available"] == [({}, 1.0)]
    infinite = [
        value
        for sample, value in metrics[request_counts.DURATION + "_bucket"]
        if sample["le"] == "+Inf"
        and sample["host"] == "r.example.com"
        and sample["status"] == "200"
    ]
    assert infinite == [1.0]
    # The bounds as ingress-nginx writes them (Go's %g), which queries may match as text.
    text = generate_latest(site.registry).decode()
    assert 'le="1",' in text and 'le="10",' in text and 'le="0.005",' in text
    assert 'le="1.0"' not in text and 'le="10.0"' not in text


def test_plain_mode_says_it_counts_nothing():
    registry = CollectorRegistry()
    registry.register(RequestCollector(None, lambda: (), dict))
    text = generate_latest(registry).decode()
    assert "edgeagent_request_counters_available 0.0" in text
    assert "plain mode has no Lua" in text
    assert f"\n{request_counts.REQUESTS}{{" not in text  # no sample


def test_a_rendered_wildcard_counts_under_its_host_as_written(site):
    assert site.get("x.rw.example.com", "/slow").status == 200
    wildcard = {
        "status": "200",
        "method": "GET",
        "host": "*.rw.example.com",  # not its server_name, a regex
        "namespace": "default",
        "ingress": "rendered",
        "service": "slow",
    }

    def exported():
        samples = site.exported().get(request_counts.REQUESTS) or ()
        return [value for labels, value in samples if labels == wildcard]

    assert eventually(exported) == [1.0]


def test_clients_add_no_label_sets(site):
    """Host and method come from clients: a wildcard counts under its table name, a client
    asking the route location itself under no host, a made-up method as OTHER."""

    def total() -> int:
        counts = site.counts()
        return sum(s.count for s in counts.series) + counts.overflow

    def hostile(name: str) -> None:
        method = f"BREW{name.upper()}"
        assert site.get(f"{name}.w.example.com").status == 200
        # Proxied: the backend (Python's http.server) does not implement the method.
        answer = request(site.rendered.ports.http, f"{name}.w.example.com", method=method)
        assert answer.status == 501
        for target in ("/_edgeagent-route", "//%5Fedgeagent-route"):
            answer = request(site.rendered.ports.http, f"{name}.example.net", target, method=method)
            assert answer.status == 404

    before = total()
    hostile("first")
    # The log phase runs after the answer is sent. The route location's 404s have no host
    # (no table entry routed them) and no backend: not counted at all.
    eventually(lambda: total() == before + 2)
    known = by_key(site.counts())
    assert known[("200", "GET", "*.w.example.com")].backend
    assert known[("501", "OTHER", "*.w.example.com")].backend
    before = total()
    for letter in "abcdefghijklmnopqrst":
        hostile(letter)
    eventually(lambda: total() == before + 40)
    assert by_key(site.counts()).keys() == known.keys()
    assert not any(host.endswith(".example.net") or not host for _, _, host in known)


def test_label_sets_are_bounded_and_the_rest_counted_as_overflow(site):
    before = len(site.counts().series)
    extra = SERIES_MAX - before + 5
    for n in range(extra):  # each answer status a new label set
        assert site.get("a.example.com", **{"X-Echo-Status": str(210 + n)}).status == 210 + n
    counts = eventually(lambda: (c := site.counts()).overflow == 5 and c)
    assert len(counts.series) == SERIES_MAX
    exported = site.exported()["edgeagent_request_counters_overflow"]
    assert exported == [({}, 5.0)]
    # Known label sets are still counted.
    known = by_key(counts)[("200", "GET", "a.example.com")].count
    site.get("a.example.com")
    eventually(lambda: by_key(site.counts())[("200", "GET", "a.example.com")].count == known + 1)


def test_the_dict_holds_every_series_at_its_largest():
    """No count is evicted: SERIES_MAX series of SERIES_BYTES fit, beside the slab's pages."""
    for series_max in (1, SERIES_MAX, request_counts.SERIES_MAX):
        size = request_counts.requests_dict_mb(series_max) * 2**20
        assert size >= series_max * request_counts.SERIES_BYTES + 2**20


def test_a_malformed_line_is_left_out_and_counted_not_the_whole_read():
    buckets = " ".join(["1"] * (len(request_counts.BUCKETS) + 1))
    good = f"200 GET a.example.com default-app-80\t1\t0.001000\t{buckets}"
    text = "\n".join(["overflow 2", good, "200 GET a b c\t1\t0.1\t1", "junk", good]) + "\n"
    counts = request_counts.parse(text)
    assert [s.host for s in counts.series] == ["a.example.com"] * 2
    assert (counts.overflow, counts.malformed) == (2, 2)
    with pytest.raises(request_counts.CountsError, match="expected 'overflow N' first"):
        request_counts.parse(good)


def test_an_nginx_that_does_not_answer_makes_the_counters_unavailable_soon(tmp_path):
    """The counters' own short timeout, not the pushes' (here an hour): the scrape goes on."""
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        control = Control(str(tmp_path), f"127.0.0.1:{silent.getsockname()[1]}", timeout=3600)
        registry = CollectorRegistry()
        registry.register(RequestCollector(control.request_counts, lambda: (), dict))
        scraped: list[str] = []
        scrape = threading.Thread(target=lambda: scraped.append(generate_latest(registry).decode()))
        scrape.start()
        scrape.join(timeout=60)  # generous: REQUESTS_TIMEOUT_SECONDS is 2
        assert not scrape.is_alive()
        assert "edgeagent_request_counters_available 0.0" in scraped[0]
    finally:
        silent.close()
