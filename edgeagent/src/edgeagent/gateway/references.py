"""The Services and Secrets that Gateway API objects name: changes to them are worth a sync.

A superset is safe (a Gateway of another class, a route attached nowhere): the model
decides what is served; this only keeps unrelated Services and Secrets from costing syncs.
"""

from __future__ import annotations

from typing import Any

from edgeagent.resources import Key, key_of

CORE_GROUP = ""


def mapping(value: Any) -> dict:
    """`value` if it is a mapping, else empty: a malformed field is read as absent."""
    return value if isinstance(value, dict) else {}


def mappings(value: Any) -> list[dict]:
    """The mappings of a list; anything else, and what is not a mapping in it, is skipped."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _spec(obj: dict) -> dict:
    return mapping(obj.get("spec"))


def object_ref(ref: dict, default_namespace: str, kind: str) -> Key | None:
    """(namespace, name) of a reference to a core-group `kind` (Service, Secret), or None
    when it names another group or kind, or no name."""
    if ref.get("group", CORE_GROUP) != CORE_GROUP or ref.get("kind", kind) != kind:
        return None
    name, namespace = ref.get("name"), ref.get("namespace", default_namespace)
    if not isinstance(name, str) or not isinstance(namespace, str):
        return None
    return namespace, name


def backend_refs(route: dict) -> list[dict]:
    """Every backendRef of an HTTPRoute's rules, their RequestMirror filters' included."""
    rules = mappings(_spec(route).get("rules"))
    mirrors = [
        mapping(mapping(each.get("requestMirror")).get("backendRef"))
        for rule in rules
        for each in mappings(rule.get("filters"))
        if each.get("type") == "RequestMirror"
    ]
    return [ref for rule in rules for ref in mappings(rule.get("backendRefs"))] + mirrors


def certificate_refs(gateway: dict) -> list[dict]:
    return [
        ref
        for listener in mappings(_spec(gateway).get("listeners"))
        if isinstance(listener.get("tls"), dict)
        for ref in mappings(listener["tls"].get("certificateRefs"))
    ]


def services(http_routes: list[dict]) -> set[Key]:
    found = set()
    for route in http_routes:
        for ref in backend_refs(route):
            key = object_ref(ref, key_of(route)[0], "Service")
            if key is not None:
                found.add(key)
    return found


def secrets(gateways: list[dict]) -> set[Key]:
    found = set()
    for gateway in gateways:
        for ref in certificate_refs(gateway):
            key = object_ref(ref, key_of(gateway)[0], "Secret")
            if key is not None:
                found.add(key)
    return found
