"""The pure parts: selector grammar and the three patch formats."""

import pytest

from kubeemu import patches, selectors


def obj(labels=None, **fields):
    return {"metadata": {"name": "n", "labels": labels or {}}, **fields}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "api"}, False),
        ("app!=web", {}, True),
        ("app in (web, api),tier", {"app": "api", "tier": "x"}, True),
        ("app notin (web,api)", {"app": "api"}, False),
        ("!canary", {"canary": "1"}, False),
        ("!canary,app", {"app": "x"}, True),
    ],
)
def test_label_selectors(selector, labels, expected):
    assert selectors.matches(obj(labels), selectors.parse_label_selector(selector), ()) is expected


@pytest.mark.parametrize("selector", ["app in (a", "a=b=c", "x in y", ",=,"])
def test_bad_label_selectors_are_rejected(selector):
    with pytest.raises(selectors.SelectorError):
        selectors.parse_label_selector(selector)


def test_field_selectors_compare_strings_at_dotted_paths():
    secret = obj(type="kubernetes.io/tls", spec={"ready": True})
    fields = selectors.parse_field_selector("type=kubernetes.io/tls,spec.ready==true")
    assert selectors.matches(secret, (), fields)
    assert not selectors.matches(secret, (), selectors.parse_field_selector("metadata.name!=n"))


def test_merge_patch_deletes_with_null_and_does_not_touch_its_input():
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert patches.merge_patch(target, {"a": {"b": None}, "l": [3]}) == {"a": {"c": 2}, "l": [3]}
    assert target == {"a": {"b": 1, "c": 2}, "l": [1, 2]}


def test_strategic_merge_patch_merges_lists_by_the_key_kubectl_reveals():
    service = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    patch = {
        "spec": {
            "$setElementOrder/ports": [{"port": 80}],
            "ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "$patch": "delete"}],
        }
    }
    assert patches.strategic_merge_patch(service, patch) == {
        "spec": {"ports": [{"port": 80, "name": "http", "targetPort": 8080}]}
    }


def test_strategic_merge_patch_replaces_lists_without_a_merge_key():
    status = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    patch = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}]}}}
    assert patches.strategic_merge_patch(status, patch) == patch


def test_strategic_merge_patch_unions_primitive_lists_and_honours_retain_keys():
    target = {"metadata": {"finalizers": ["a"]}, "spec": {"x": 1, "y": 2}}
    patch = {
        "metadata": {"$setElementOrder/finalizers": ["a", "b"], "finalizers": ["b"]},
        "spec": {"$retainKeys": ["y"], "y": 3},
    }
    assert patches.strategic_merge_patch(target, patch) == {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {"y": 3},
    }


def test_json_patch_operations():
    document = {"a": [1, 2], "b": {"c": 1}}
    result = patches.json_patch(
        document,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "move", "from": "/b/c", "path": "/d"},
            {"op": "copy", "from": "/d", "path": "/e"},
            {"op": "remove", "path": "/a/0"},
            {"op": "test", "path": "/e", "value": 2},
        ],
    )
    assert result == {"a": [2, 3], "b": {}, "d": 2, "e": 2}
    assert document == {"a": [1, 2], "b": {"c": 1}}


@pytest.mark.parametrize(
    "operations",
    [
        {"op": "add"},
        [{"op": "remove", "path": "/missing"}],
        [{"op": "test", "path": "/a", "value": 0}],
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "add", "path": "no-slash", "value": 1}],
    ],
)
def test_json_patch_errors(operations):
    with pytest.raises(patches.PatchError):
        patches.json_patch({"a": 1}, operations)
