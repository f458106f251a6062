"""Gateway API objects as API JSON dicts, written briefly (the conformance suite's shapes)."""

from edgeagent.gateway.options import GatewayOptions
from edgeagent.resources import GATEWAY_GROUP

V1 = f"{GATEWAY_GROUP}/v1"
CONTROLLER = GatewayOptions.controller_name
INFRA = "gateway-conformance-infra"


def gateway_class(name: str = "edge", controller: str = CONTROLLER, generation: int = 1) -> dict:
    return {
        "apiVersion": V1,
        "kind": "GatewayClass",
        "metadata": {"name": name, "generation": generation},
        "spec": {"controllerName": controller},
    }


def listener(
    name: str = "http",
    port: int = 80,
    protocol: str = "HTTP",
    hostname: str | None = None,
    allowed_from: str | None = None,
    selector: dict | None = None,
    kinds: list[dict] | None = None,
    certificates: list[dict] | None = None,
) -> dict:
    entry: dict = {"name": name, "port": port, "protocol": protocol}
    if hostname is not None:
        entry["hostname"] = hostname
    allowed: dict = {}
    if allowed_from is not None:
        allowed["namespaces"] = {"from": allowed_from}
        if selector is not None:
            allowed["namespaces"]["selector"] = selector
    if kinds is not None:
        allowed["kinds"] = kinds
    if allowed:
        entry["allowedRoutes"] = allowed
    if certificates is not None:
        entry["tls"] = {"mode": "Terminate", "certificateRefs": certificates}
    return entry


def gateway(
    name: str, *listeners: dict, namespace: str = INFRA, gateway_class_name: str = "edge"
) -> dict:
    return {
        "apiVersion": V1,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {"gatewayClassName": gateway_class_name, "listeners": list(listeners)},
    }


def parent(gateway_name: str, namespace: str | None = INFRA, **fields) -> dict:
    ref = {"name": gateway_name, **fields}
    if namespace is not None:
        ref["namespace"] = namespace
    return ref


def backend_ref(name: str, port: int = 8080, **fields) -> dict:
    return {"name": name, "port": port, **fields}


def http_route(
    name: str,
    parents: list[dict],
    rules: list[dict] | None = None,
    hostnames: list[str] | None = None,
    namespace: str = INFRA,
    generation: int = 1,
    created: str | None = None,
) -> dict:
    spec: dict = {"parentRefs": parents}
    if rules is None:
        rules = [{"backendRefs": [backend_ref("infra-backend-v1")]}]
    spec["rules"] = rules
    if hostnames is not None:
        spec["hostnames"] = hostnames
    metadata = {"name": name, "namespace": namespace, "generation": generation}
    if created is not None:
        metadata["creationTimestamp"] = created
    return {"apiVersion": V1, "kind": "HTTPRoute", "metadata": metadata, "spec": spec}


def reference_grant(
    namespace: str, from_kind: str, from_namespace: str, to_kind: str, to_name: str | None = None
) -> dict:
    to = {"group": "", "kind": to_kind}
    if to_name is not None:
        to["name"] = to_name
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": f"grant-{from_namespace}", "namespace": namespace},
        "spec": {
            "from": [{"group": GATEWAY_GROUP, "kind": from_kind, "namespace": from_namespace}],
            "to": [to],
        },
    }


def namespace(name: str, **labels: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}},
    }
