"""The status the Gateway API objects should show, from an `Attachment`: pure.

Several agents compute it from the same objects, so it must come out the same on each:
a condition keeps the `lastTransitionTime` it has in the cluster while its status stays
the same, and only a condition whose status changes takes `now`. Once one agent's
write is seen, the others find nothing to change: no flapping between nodes. A route's
`parents` written by other controllers are kept as they are.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from edgeagent.gateway.attachment import Attachment, GatewayState, RouteState
from edgeagent.gateway.conditions import Condition
from edgeagent.resources import BY_KIND, GATEWAY_GROUP, Key

Status = dict[str, Any]


def _conditions(
    conditions: tuple[Condition, ...], generation: int, current: list | None, now: str
) -> list[dict]:
    before = {c.get("type"): c for c in current or [] if isinstance(c, dict)}
    written = []
    for condition in conditions:
        previous = before.get(condition.type) or {}
        same = previous.get("status") == condition.status_text
        written.append(
            {
                "type": condition.type,
                "status": condition.status_text,
                "reason": condition.reason,
                "message": condition.message,
                "observedGeneration": generation,
                "lastTransitionTime": previous.get("lastTransitionTime", now) if same else now,
            }
        )
    return written


def _status(obj: dict) -> dict:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def class_status(generation: int, conditions: tuple[Condition, ...], obj: dict, now: str) -> Status:
    return {"conditions": _conditions(conditions, generation, _status(obj).get("conditions"), now)}


def gateway_status(state: GatewayState, addresses: list[dict], obj: dict, now: str) -> Status:
    current = _status(obj)
    listeners_before = {
        each.get("name"): each.get("conditions")
        for each in current.get("listeners") or []
        if isinstance(each, dict)
    }
    return {
        "addresses": addresses,
        "conditions": _conditions(
            state.conditions, state.generation, current.get("conditions"), now
        ),
        "listeners": [
            {
                "name": listener.name,
                "supportedKinds": [
                    {"group": GATEWAY_GROUP, "kind": kind} for kind in listener.supported_kinds
                ],
                "attachedRoutes": state.attached_routes.get(listener.name, 0),
                "conditions": _conditions(
                    listener.conditions, state.generation, listeners_before.get(listener.name), now
                ),
            }
            for listener in state.listeners
        ],
    }


def route_status(state: RouteState, controller_name: str, obj: dict, now: str) -> Status:
    current = _status(obj).get("parents") or []
    ours_before = {
        _parent_key(p.get("parentRef") or {}): p.get("conditions")
        for p in current
        if isinstance(p, dict) and p.get("controllerName") == controller_name
    }
    others = [
        p for p in current if isinstance(p, dict) and p.get("controllerName") != controller_name
    ]
    ours = [
        {
            "parentRef": parent.parent_ref,
            "controllerName": controller_name,
            "conditions": _conditions(
                parent.conditions,
                state.generation,
                ours_before.get(_parent_key(parent.parent_ref)),
                now,
            ),
        }
        for parent in state.parents
    ]
    return {"parents": others + ours}


def _parent_key(ref: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in ref.items()))


def addresses_of(published: tuple[str, ...]) -> list[dict]:
    """`status.addresses` of a Gateway: the edge's published addresses (the VIPs)."""
    found = []
    for address in published:
        try:
            ipaddress.ip_address(address)
            found.append({"type": "IPAddress", "value": address})
        except ValueError:
            found.append({"type": "Hostname", "value": address})
    return found


def wanted(
    attachment: Attachment, objects: dict[str, dict[Key, dict]], addresses: list[dict], now: str
) -> list[tuple[str, Key, Status]]:
    """(registry name of the kind, key, status) of every object whose status differs
    from what it should be. `objects`: the cached objects of each kind, by key."""
    changes: list[tuple[str, Key, Status]] = []

    def compare(kind: str, key: Key, make) -> None:
        obj = objects[kind].get(key)
        if obj is None:
            return
        status = make(obj)
        current = _status(obj)
        if any(current.get(field) != value for field, value in status.items()):
            changes.append((kind, key, status))

    for name, (generation, conditions) in sorted(attachment.classes.items()):
        compare(
            "gateway_classes",
            ("", name),
            lambda obj, g=generation, c=conditions: class_status(g, c, obj, now),
        )
    # Where the listeners bind (--gateway-address), else the published addresses.
    bound = addresses_of(attachment.bound_addresses) if attachment.bound_addresses else addresses
    for state in attachment.gateways:
        own = addresses_of(state.addresses) if attachment.dedicated else bound
        compare("gateways", state.key, lambda obj, s=state, a=own: gateway_status(s, a, obj, now))
    for route in attachment.routes:
        compare(
            BY_KIND[route.kind].name,
            route.key,
            lambda obj, r=route: route_status(r, attachment.controller_name, obj, now),
        )
    return changes
