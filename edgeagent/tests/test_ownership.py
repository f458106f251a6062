"""--host-owner: who may serve paths on a host (issue 14), through model.build and check."""

import pytest
import support_objects as objects
import yaml

from edgeagent import cli, model

OLD = "2020-01-01T00:00:00Z"
NEW = "2021-01-01T00:00:00Z"


def world():
    """The bank's host, claimed first by `bank`, then `/login` on it by `mallory`; and a
    host of mallory's own."""
    ingresses = [
        objects.ingress(
            "login",
            objects.rule("bank.example.com", objects.path("/login", "phish")),
            objects.rule("mallory.example.com", objects.path("/", "phish")),
            namespace="mallory",
            created=NEW,
            tls=[{"hosts": ["bank.example.com"], "secretName": "fake"}],
        ),
        objects.ingress(
            "site",
            objects.rule("bank.example.com", objects.path("/", "web")),
            namespace="bank",
            created=OLD,
        ),
    ]
    services = [
        objects.service("web", namespace="bank"),
        objects.service("phish", namespace="mallory"),
    ]
    slices = [
        objects.endpoint_slice("web", [("10.0.0.1", True)], 8080, namespace="bank"),
        objects.endpoint_slice("phish", [("10.0.0.2", True)], 8080, namespace="mallory"),
    ]
    fake = objects.tls_secret("fake", cli.self_signed("bank.example.com"), namespace="mallory")
    return model.Inputs(
        ingresses=ingresses, services=services, endpoint_slices=slices, secrets=[fake]
    )


def paths(built, host):
    server = next(s for s in built.servers if s.host == host)
    return {loc.path: loc.upstream for loc in server.locations}


def test_merge_serves_every_namespace_s_paths_and_records_the_shared_host():
    built = model.build(world(), model.Options(ingress_class="edge"))
    assert set(paths(built, "bank.example.com")) == {"/", "/login", "/login/"}
    assert built.shared_hosts == {"bank.example.com": ("bank", "mallory")}


def test_namespace_gives_the_host_to_its_oldest_ingress_namespace():
    built = model.build(world(), model.Options(ingress_class="edge", host_owner="namespace"))
    bank = paths(built, "bank.example.com")
    assert set(bank) == {"/"} and bank["/"] == model.upstream_name("bank", "web", 80)
    assert set(paths(built, "mallory.example.com")) == {"/"}  # its own host: served
    assert not next(s for s in built.servers if s.host == "bank.example.com").https
    (refused,) = [p for p in built.problems if p.namespace == "mallory"]
    assert (refused.kind, refused.name, refused.code) == ("Ingress", "login", "conflict")
    assert "belongs to namespace bank" in refused.reason
    assert ("mallory", "login") in built.served_ingresses  # its other host is
    assert built.shared_hosts == {"bank.example.com": ("bank", "mallory")}


@pytest.mark.parametrize(("mode", "status"), [("merge", 0), ("namespace", 1)])
def test_check_warns_about_shared_hosts_in_both_modes(tmp_path, capsys, mode, status):
    inputs = world()
    documents = [*inputs.ingresses, *inputs.services, *inputs.endpoint_slices, *inputs.secrets]
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(documents))
    assert cli.main(["check", "-f", str(tmp_path), "--host-owner", mode]) == status
    printed = capsys.readouterr().out
    assert (
        "warning: host bank.example.com is named by Ingresses of namespaces bank, mallory"
        in printed
    )
    assert ("belongs to namespace bank" in printed) == (mode == "namespace")
