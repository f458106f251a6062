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

from edgeagent.nodeports import node_content

Key = tuple[str, str]  # (namespace or "", name)
Object = dict[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
GATEWAY_GROUP = "gateway.networking.k8s.io"


def key_of(obj: Object) -> Key:
    """(namespace, name); "" for either when it is missing or malformed (a manifest)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return ("", "")
    namespace, name = metadata.get("namespace"), metadata.get("name")
    return (namespace if isinstance(namespace, str) else "", name if isinstance(name, str) else "")


def service_of(endpoint_slice: Object) -> Key:
    """The Service an EndpointSlice belongs to, by its `kubernetes.io/service-name` label."""
    metadata = endpoint_slice.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
    return (key_of(endpoint_slice)[0], service if isinstance(service, str) else "")


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
    content: Callable[[Object], Object] | None = None
    """What of an object can alter the configuration, when that is not all of it (nor all
    but its status): a change elsewhere costs no sync."""
    custom: bool = False
    """Defined by a CustomResourceDefinition (the Gateway API): the client has no typed API
    class for it, so it is listed through `CustomObjectsApi`."""
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
        kind across all namespaces, e.g. ("NetworkingV1Api", "list_ingress_class"); a
        custom kind's method takes its group, version and plural first."""
        if self.custom:
            return "CustomObjectsApi", "list_cluster_custom_object"
        api, snake = self.client_names
        return api, f"list_{snake}_for_all_namespaces" if self.namespaced else f"list_{snake}"

    @property
    def namespaced_list_method(self) -> tuple[str, str]:
        """The same in one namespace (a namespaced kind), e.g. ("CoreV1Api",
        "list_namespaced_secret"): what `--watch-namespaces` asks for, and what a Role in
        that namespace grants; a custom kind's method takes its group, version, the
        namespace and its plural."""
        if self.custom:
            return "CustomObjectsApi", "list_namespaced_custom_object"
        api, snake = self.client_names
        return api, f"list_namespaced_{snake}"

    @property
    def client_names(self) -> tuple[str, str]:
        """The `kubernetes.client` API class and the kind in snake case ("CoreV1Api",
        "secret"), of which its methods are named."""
        group = self.group.split(".")[0] if self.group else "core"
        api = f"{group.capitalize()}{self.version.capitalize()}Api"
        return api, re.sub(r"(?<!^)(?=[A-Z])", "_", self.kind).lower()


NEVER_SERVED_SECRET_TYPES = (
    "kubernetes.io/service-account-token",
    "bootstrap.kubernetes.io/token",
    "kubernetes.io/dockerconfigjson",
    "kubernetes.io/dockercfg",
    # Helm's release records: up to 1 MiB each, one per revision of every release.
    "helm.sh/release.v1",
)
"""Secret types no annotation and no TLS entry can use: credentials the agent must not
hold, and Helm's release records, the bulk of most clusters' Secrets. Excluded by the
field selector, so the API server never sends them (a real one accepts `!=` terms on
`type`)."""

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
    # kubernetes.io/tls serves TLS, and annotations name Opaque ones (htpasswd lines, CAs);
    # the types that can serve neither never reach the agent. Only those referred to are
    # held with their content (cache.py).
    Resource(
        "secrets",
        "Secret",
        "",
        "v1",
        "secrets",
        field_selector=",".join(f"type!={kind}" for kind in NEVER_SERVED_SECRET_TYPES),
        referenced_as="secrets",
        held_only_while_referenced=True,
    ),
    # The Gateway API. The agents write the status of the classes, Gateways and routes
    # they serve, as they do an Ingress's.
    Resource(
        "gateway_classes",
        "GatewayClass",
        GATEWAY_GROUP,
        "v1",
        "gatewayclasses",
        namespaced=False,
        status_ignored=True,
        custom=True,
    ),
    Resource(
        "gateways",
        "Gateway",
        GATEWAY_GROUP,
        "v1",
        "gateways",
        status_ignored=True,
        custom=True,
    ),
    Resource(
        "http_routes",
        "HTTPRoute",
        GATEWAY_GROUP,
        "v1",
        "httproutes",
        status_ignored=True,
        custom=True,
    ),
    # Their labels select the namespaces a listener admits routes from (allowedRoutes).
    Resource("namespaces", "Namespace", "", "v1", "namespaces", namespaced=False),
    # Still v1beta1 in the Gateway API's standard channel.
    Resource(
        "reference_grants",
        "ReferenceGrant",
        GATEWAY_GROUP,
        "v1beta1",
        "referencegrants",
        custom=True,
    ),
    # Their spec.podCIDRs: where backends may be (backends.py); their addresses, readiness,
    # cordon and labels: where NodePorts are reached (nodeports.py). Heartbeats cost nothing.
    Resource("nodes", "Node", "", "v1", "nodes", namespaced=False, content=node_content),
    Resource(
        "grpc_routes",
        "GRPCRoute",
        GATEWAY_GROUP,
        "v1",
        "grpcroutes",
        status_ignored=True,
        custom=True,
    ),
    # The custom-headers annotation's (annotations/customheaders.py): only those referred
    # to are held with their data (cache.py), the rest of a cluster's ConfigMaps (often
    # large, and none of the edge's business) as their identity.
    Resource(
        "config_maps",
        "ConfigMap",
        "",
        "v1",
        "configmaps",
        referenced_as="config_maps",
        held_only_while_referenced=True,
    ),
)
NAMES = tuple(resource.name for resource in RESOURCES)
BY_NAME = {resource.name: resource for resource in RESOURCES}
BY_KIND = {resource.kind: resource for resource in RESOURCES}
