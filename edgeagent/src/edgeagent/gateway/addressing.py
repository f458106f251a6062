"""`--gateway-address-mode dedicated`: which address of the `--gateway-address` pool each
Gateway gets. Pure, and the same on every edge node: it depends on the objects and the
pool only.

Gateways are served oldest first (creationTimestamp, then namespace/name: the order the
spec gives conflicts). One that names `spec.addresses` gets them, unless an older one holds
one of them; one that names none (or only a type without a value) gets the first address of
the pool that no older Gateway holds and no Gateway names: an address a Gateway asks for
by name is never handed out to another, so adding that Gateway later moves no one onto it.
A Gateway left without an address is not Programmed (AddressNotAssigned) and serves nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from edgeagent.resources import Key

Request = tuple[Key, tuple[str, ...]]
"""A Gateway and the addresses its `spec.addresses` names (canonical; () for any)."""


def named_addresses(requested: object) -> tuple[str, ...]:
    """The IP addresses `spec.addresses` names, canonical, in order; entries without a
    value (a type only: "any address of that type") name none. `attachment` has already
    refused every other form."""
    found = []
    for entry in requested if isinstance(requested, list) else []:
        value = entry.get("value") if isinstance(entry, dict) else None
        if isinstance(value, str):
            found.append(str(ipaddress.ip_address(value)))
    return tuple(dict.fromkeys(found))


def assign(requests: Iterable[Request], pool: tuple[str, ...]) -> dict[Key, tuple[str, ...] | str]:
    """Each Gateway's addresses, or why it has none; `requests` oldest first."""
    requests = list(requests)
    named = {address for _, wanted in requests for address in wanted}
    holders: dict[str, Key] = {}
    assigned: dict[Key, tuple[str, ...] | str] = {}
    for key, wanted in requests:
        if wanted:
            held = [(a, holders[a]) for a in wanted if a in holders]
            if held:
                address, (namespace, name) = held[0]
                assigned[key] = (
                    f"spec.addresses {address}: held by Gateway {namespace}/{name} (older, "
                    "or as old and first by namespace/name)"
                )
                continue
            chosen = wanted
        else:
            free = next((a for a in pool if a not in holders and a not in named), None)
            if free is None:
                assigned[key] = (
                    f"no free address in --gateway-address ({', '.join(pool) or 'none'}): "
                    "each is held by an older Gateway or named by one"
                )
                continue
            chosen = (free,)
        holders.update(dict.fromkeys(chosen, key))
        assigned[key] = chosen
    return assigned
