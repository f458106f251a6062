"""The watched kinds: the one list that the informers, the cache, Events, manifest loading
and `model.Inputs` all read.

Each `Resource` says where the kind lives in the API (group, version, plural, whether it
is namespaced), under which name the cache and `model.Inputs` hold it, which of its
objects the API is asked for, and which of its changes can alter the configuration (see
`Resource.referenced_as` and `Resource.status_ignored`, read by the controller's
relevance filter). A new kind is a new entry here, plus the model code that reads it
(tests/test_resources.py checks that the role's RBAC lets the agent list and watch it).

Pure data: no Kubernetes client is imported, so the offline commands and the pure core
can read it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]  # (namespace or "", name)
Object = dict[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def key_of(obj: Object) -> Key:
    metadata = obj.get("metadata") or {}
    return (metadata.get("namespace") or "", metadata.get("name") or "")


def service_of(endpoint_slice: Object) -> Key:
    """The Service an EndpointSlice belongs to, by its `kubernetes.io/service-name` label."""
    metadata = endpoint_slice.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return (metadata.get("namespace") or "", labels.get(SERVICE_NAME_LABEL) or "")


@dataclass(frozen=True)
class Resource:
    """One watched kind."""

    name: str
    """Its name in the cache, in `model.Inputs` and in metric labels (`endpoint_slices`)."""
    kind: str
    group: str
    """API group; "" for the core group."""
    version: str
    plural: str
    namespaced: bool = True
    field_selector: str | None = None
    """Asked of the API on every list and watch: objects outside it never reach the agent."""
    referenced_as: str | None = None
    """None: every change of content counts. Else a field of the controller's References
    (what the Ingresses refer to): a change counts only for an object referred to there."""
    reference_key: Callable[[Object], Key] = key_of
    """The key looked up in `referenced_as` (an EndpointSlice: its Service's)."""
    status_ignored: bool = False
    """Its status never reaches the configuration (an Ingress's is written by the agents
    themselves): a change of the status alone costs no sync."""
    held_only_while_referenced: bool = False
    """Its content is a secret: the cache holds an object whole only while `referenced_as`
    names it, and only its identity otherwise (cache.py), so that the agent's memory
    holds the keys it serves and no other."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_method(self) -> tuple[str, str]:
        """The `kubernetes.client` API class and its method that lists (and watches) the
        kind across all namespaces, e.g. ("NetworkingV1Api", "list_ingress_class")."""
        api, snake = self.client_names
        return api, f"list_{snake}_for_all_namespaces" if self.namespaced else f"list_{snake}"

    @property
    def namespaced_list_method(self) -> tuple[str, str]:
        """The same in one namespace (a namespaced kind), e.g. ("CoreV1Api",
        "list_namespaced_secret"): what `--watch-namespaces` asks for, and what a Role in
        that namespace grants."""
        api, snake = self.client_names
        return api, f"list_namespaced_{snake}"

    @property
    def client_names(self) -> tuple[str, str]:
        """The `kubernetes.client` API class and the kind in snake case ("CoreV1Api",
        "secret"), of which its methods are named."""
        group = self.group.split(".")[0] if self.group else "core"
        api = f"{group.capitalize()}{self.version.capitalize()}Api"
        return api, re.sub(r"(?<!^)(?=[A-Z])", "_", self.kind).lower()


RESOURCES = (
    Resource(
        "ingresses",
        "Ingress",
        "networking.k8s.io",
        "v1",
        "ingresses",
        status_ignored=True,
    ),
    Resource(
        "ingress_classes",
        "IngressClass",
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        namespaced=False,
    ),
    Resource(
        "services",
        "Service",
        "",
        "v1",
        "services",
        referenced_as="services",
        status_ignored=True,
    ),
    Resource(
        "endpoint_slices",
        "EndpointSlice",
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        referenced_as="services",
        reference_key=service_of,
    ),
    # Only type kubernetes.io/tls can serve TLS; other Secrets never reach the agent.
    Resource(
        "secrets",
        "Secret",
        "",
        "v1",
        "secrets",
        field_selector="type=kubernetes.io/tls",
        referenced_as="secrets",
        held_only_while_referenced=True,
    ),
    # Their spec.podCIDRs: where backends may be (backends.py); status changes cost nothing.
    Resource("nodes", "Node", "", "v1", "nodes", namespaced=False, status_ignored=True),
)
NAMES = tuple(resource.name for resource in RESOURCES)
BY_NAME = {resource.name: resource for resource in RESOURCES}
BY_KIND = {resource.kind: resource for resource in RESOURCES}
