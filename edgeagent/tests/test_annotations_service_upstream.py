"""service-upstream stays refused, with the reason that holds outside the cluster."""

from edgeagent import annotations

KEY = "nginx.ingress.kubernetes.io/service-upstream"


def test_true_is_refused_naming_the_cluster_ip():
    (finding,) = annotations.parse({KEY: "true"}, annotations.Config()).findings
    assert (finding.status, finding.code) == ("refused", "unsupported")
    assert "ClusterIP" in finding.reason and "--backend-mode nodeport" in finding.reason


def test_false_asks_for_what_the_edge_does():
    (finding,) = annotations.parse({KEY: "false"}, annotations.Config()).findings
    assert (finding.status, finding.code) == ("ignored", "warning")
