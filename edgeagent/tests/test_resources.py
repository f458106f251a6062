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


def test_the_role_s_rbac_lets_the_agent_list_and_watch_every_kind():
    template = (
        pathlib.Path(__file__).resolve().parents[2]
        / "roles/edgeagent/templates/rbac/edgeagent-rbac.yaml.j2"
    )
    environment = jinja2.Environment()
    environment.filters["comment"] = lambda text: f"# {text}"
    environment.filters["to_nice_yaml"] = lambda value, indent: yaml.safe_dump(value)
    text = environment.from_string(template.read_text()).render(
        ansible_managed="test", edgeagent_rbac_name="edgeagent", edgeagent_rbac_subjects=[]
    )
    role = next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "ClusterRole")
    granted = {
        (group, resource)
        for rule in role["rules"]
        if {"list", "watch"} <= set(rule["verbs"])
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for resource in RESOURCES:
        assert (resource.group, resource.plural) in granted, resource.name
