"""Apply edgeagent's RBAC manifest (ClusterRole, ClusterRoleBinding) with the kubernetes client.

Idempotent: an object is created when missing, patched when what the manifest says differs
from what the cluster has, and left alone otherwise (fields the server adds are ignored). A
binding whose roleRef changed is replaced, because roleRef is immutable. With --check it only
reports what it would do.

Prints one JSON object: {"changed": bool, "actions": ["created ClusterRole edgeagent", ...]}.
"""

import argparse
import json
import sys
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

MERGE_PATCH = "application/merge-patch+json"


def contains(actual: Any, wanted: Any) -> bool:
    """Whether `actual` (from the server) holds everything `wanted` (the manifest) says."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            contains(actual.get(key), value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(map(contains, actual, wanted))
        )
    return actual == wanted


class ClusterScoped:
    """read/create/patch/delete of one cluster-scoped RBAC kind, by name."""

    def __init__(self, rbac: client.RbacAuthorizationV1Api, kind: str) -> None:
        suffix = {"ClusterRole": "cluster_role", "ClusterRoleBinding": "cluster_role_binding"}[kind]
        self.read = getattr(rbac, f"read_{suffix}")
        self.create = getattr(rbac, f"create_{suffix}")
        self.patch = getattr(rbac, f"patch_{suffix}")
        self.delete = getattr(rbac, f"delete_{suffix}")


def current_state(api: ClusterScoped, name: str) -> dict | None:
    try:
        return client.ApiClient().sanitize_for_serialization(api.read(name))
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def apply(rbac: client.RbacAuthorizationV1Api, document: dict, dry_run: bool) -> str | None:
    """Bring one object in line with the manifest; returns what was done, or None."""
    kind, name = document["kind"], document["metadata"]["name"]
    api = ClusterScoped(rbac, kind)
    current = current_state(api, name)
    if current is None:
        action = "created"
    elif "roleRef" in document and not contains(current.get("roleRef"), document["roleRef"]):
        action = "replaced"
    elif contains(current, document):
        return None
    else:
        action = "patched"
    if not dry_run:
        if action == "replaced":
            api.delete(name)
        if action == "patched":
            api.patch(name, document, _content_type=MERGE_PATCH)
        else:
            api.create(document)
    return f"{action} {kind} {name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, help="an identity allowed to write RBAC")
    parser.add_argument("--manifest", required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--apply", action="store_true")
    mode.add_argument("--check", action="store_true", help="report only")
    args = parser.parse_args()

    config.load_kube_config(config_file=args.kubeconfig)
    rbac = client.RbacAuthorizationV1Api()
    with open(args.manifest) as stream:
        documents = [document for document in yaml.safe_load_all(stream) if document]
    actions = [action for document in documents if (action := apply(rbac, document, args.check))]
    print(json.dumps({"changed": bool(actions), "actions": actions}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
