"""The registry of watched kinds: every consumer reads the same list."""

import dataclasses
import pathlib

import jinja2
import kubernetes
import pytest
import yaml
from edgeagent.controller import References
from edgeagent.informer import list_call
from edgeagent.resources import RESOURCES

from edgeagent import manifests, model, resources


def test_inputs_hold_one_list_per_watched_kind():
    assert [f.name for f in dataclasses.fields(model.Inputs)] == list(resources.NAMES)
    assert model.Inputs().endpoint_slices == []


class Requested(Exception):
    pass


class RecordingClient(kubernetes.client.ApiClient):
    """Says which URL a call would request, instead of requesting it."""

    def call_api(self, method, url, *args, **kwargs):
        raise Requested(method, url)


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.name)
def test_each_kind_is_listed_at_its_group_version_and_plural(resource):
    with pytest.raises(Requested) as requested:
        list_call(resource, RecordingClient())(watch=True)
    prefix = f"/apis/{resource.api_version}" if resource.group else "/api/v1"
    method, url = requested.value.args
    assert (method, url.split("?")[0]) == (
        "GET",
        f"{RecordingClient().configuration.host}{prefix}/{resource.plural}",
    )


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.name)
def test_relevance_reads_existing_references(resource):
    if resource.referenced_as is not None:
        assert resource.referenced_as in {f.name for f in dataclasses.fields(References)}


def test_manifests_sort_every_watched_kind_into_its_inputs_list(tmp_path):
    documents = [
        {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": f"a-{resource.plural}"},
        }
        for resource in RESOURCES
    ]
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(documents))
    inputs, problems = manifests.load([tmp_path])
    assert problems == []
    for resource in RESOURCES:
        (obj,) = getattr(inputs, resource.name)
        assert ("namespace" in obj["metadata"]) == resource.namespaced


def rbac_documents(watch_namespaces: list[str]) -> list[dict]:
    template = (
        pathlib.Path(__file__).resolve().parents[2]
        / "roles/edgeagent/templates/rbac/edgeagent-rbac.yaml.j2"
    )
    environment = jinja2.Environment()
    environment.filters["comment"] = lambda text: f"# {text}"
    environment.filters["to_nice_yaml"] = lambda value, indent: yaml.safe_dump(value)
    text = environment.from_string(template.read_text()).render(
        ansible_managed="test",
        edgeagent_rbac_name="edgeagent",
        edgeagent_rbac_subjects=[{"kind": "User", "name": "edge"}],
        edgeagent_watch_namespaces=watch_namespaces,
    )
    return [d for d in yaml.safe_load_all(text) if d]


def list_and_watch(role: dict) -> set[tuple[str, str]]:
    return {
        (group, resource)
        for rule in role["rules"]
        if {"list", "watch"} <= set(rule["verbs"])
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_the_role_s_rbac_lets_the_agent_list_and_watch_every_kind():
    (role,) = [d for d in rbac_documents([]) if d["kind"] == "ClusterRole"]
    for resource in RESOURCES:
        assert (resource.group, resource.plural) in list_and_watch(role), resource.name


def test_with_watched_namespaces_only_roles_there_grant_the_namespaced_kinds():
    """Least privilege (issue 14): no Secret outside the watched namespaces is readable."""
    documents = rbac_documents(["team-a", "team-b"])
    (cluster_role,) = [d for d in documents if d["kind"] == "ClusterRole"]
    roles = {d["metadata"]["namespace"]: d for d in documents if d["kind"] == "Role"}
    bindings = {d["metadata"]["namespace"]: d for d in documents if d["kind"] == "RoleBinding"}
    assert set(roles) == set(bindings) == {"team-a", "team-b"}
    for resource in RESOURCES:
        wanted = (resource.group, resource.plural)
        if resource.namespaced:
            assert wanted not in list_and_watch(cluster_role), resource.name
            assert all(wanted in list_and_watch(role) for role in roles.values()), resource.name
        else:
            assert wanted in list_and_watch(cluster_role), resource.name
    cluster_wide = {resource for rule in cluster_role["rules"] for resource in rule["resources"]}
    assert cluster_wide == {
        "ingressclasses",
        "namespaces",
        "nodes",
        "gatewayclasses",
        "gatewayclasses/status",
    }
    for namespace, binding in bindings.items():
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles[namespace]["metadata"]["name"],
        }
        assert binding["subjects"] == [{"kind": "User", "name": "edge"}]


@pytest.mark.parametrize("resource", [r for r in RESOURCES if r.namespaced], ids=lambda r: r.name)
def test_a_watched_namespace_is_listed_at_its_namespaced_path(resource):
    with pytest.raises(Requested) as requested:
        list_call(resource, RecordingClient(), "team-a")(watch=True)
    prefix = f"/apis/{resource.api_version}" if resource.group else "/api/v1"
    method, url = requested.value.args
    assert (method, url.split("?")[0]) == (
        "GET",
        f"{RecordingClient().configuration.host}{prefix}/namespaces/team-a/{resource.plural}",
    )
