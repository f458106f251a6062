"""Which Gateway API objects the edge serves, and the conditions the spec names for each.

- GatewayClass: the one named `GatewayOptions.gateway_class` is ours when its
  `spec.controllerName` is `GatewayOptions.controller_name`, and is Accepted. Another class
  naming our controller is not Accepted (Unsupported: one edge serves one class). A class
  naming another controller is that controller's: no status from us.
- Gateway: those of our class. `spec.addresses` may name only IPAddress values among
  `GatewayOptions.addresses` (`--gateway-address`, which every listener binds): another
  type, or any address without that flag, is not Accepted (UnsupportedAddress); an
  address the edge does not bind is not Programmed (AddressNotUsable), its routes
  being served on the bound ones. In the dedicated address mode
  (`GatewayOptions.address_mode`) each Gateway gets its own of them instead
  (gateway.addressing), and one left without is not Programmed (AddressNotAssigned). The
  edge takes no parameters: a Gateway naming `spec.infrastructure.parametersRef` is not
  Accepted (InvalidParameters), as the spec says of one whose parameters cannot be used.
  Each listener is checked:
  protocol HTTP or HTTPS (UnsupportedProtocol), a port the edge carries to nginx for that
  protocol (PortUnavailable: `GatewayOptions.http_port` / `https_port`), TLS mode
  Terminate with Secrets as certificates, from another namespace only under a
  ReferenceGrant (ResolvedRefs False: InvalidCertificateRef, RefNotPermitted), route kinds
  (InvalidRouteKinds: HTTPRoute and GRPCRoute only), and conflicts between listeners of one
  Gateway on one port (same hostname: HostnameConflict; HTTP and HTTPS: ProtocolConflict); across
  Gateways in the shared mode, an HTTPS listener whose hostname an older Gateway serves on
  that port with other certificates (HostnameConflict: one server presents one
  certificate; a dedicated Gateway's addresses are its own). A
  listener that is not Accepted takes no routes; one with unresolved references takes
  them (they count in attachedRoutes) but is not Programmed.
- HTTPRoute and GRPCRoute: each parentRef to a Gateway of ours is bound to the listeners it selects
  (sectionName, port; none: NoMatchingParent) that admit it (allowedRoutes namespaces
  Same/All/Selector and kinds; none: NotAllowedByListeners) and share a hostname with it
  (none: NoMatchingListenerHostname); a Gateway that is not Accepted takes none
  (NoMatchingParent). A route that is invalid or uses what the edge does
  not serve is not Accepted (UnsupportedValue, with the field). ResolvedRefs says whether
  every backendRef is a Service that exists, in its namespace or under a ReferenceGrant.

Pure: objects in, decisions out; nothing here is written anywhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from edgeagent import grammar
from edgeagent.gateway import conditions as c
from edgeagent.gateway.addressing import assign, named_addresses
from edgeagent.gateway.conditions import Condition
from edgeagent.gateway.grpc_routes import parse_grpc_route
from edgeagent.gateway.options import DEDICATED, GatewayOptions
from edgeagent.gateway.references import CORE_GROUP, mapping, mappings, object_ref
from edgeagent.gateway.routes import GRPC_ROUTE, HTTP_ROUTE, Route, parse_route
from edgeagent.grammar import Invalid
from edgeagent.model import read_tls_secret
from edgeagent.resources import GATEWAY_GROUP, Key, key_of

HTTP, HTTPS = "HTTP", "HTTPS"
ROUTE_KINDS = (HTTP_ROUTE, GRPC_ROUTE)
"""What an HTTP or HTTPS listener takes."""
ANY_HOST = ""
"""A binding's hostname that matches every host (neither listener nor route names one)."""


@dataclass(frozen=True)
class Listener:
    gateway: Key
    name: str
    port: int
    protocol: str
    hostname: str | None
    certificates: tuple[Key, ...]
    """The Secrets of an HTTPS listener, in order; the first valid one serves."""
    conditions: tuple[Condition, ...]
    supported_kinds: tuple[str, ...]
    allowed_from: str = "Same"
    selector: dict | None = None

    @property
    def takes_routes(self) -> bool:
        return c.holds(self.conditions, c.ACCEPTED) and bool(self.supported_kinds)

    @property
    def programmed(self) -> bool:
        return c.holds(self.conditions, c.PROGRAMMED)


@dataclass(frozen=True)
class GatewayState:
    key: Key
    generation: int
    conditions: tuple[Condition, ...]
    listeners: tuple[Listener, ...]
    attached_routes: dict[str, int] = field(default_factory=dict)
    """Routes accepted by each listener, by listener name (its status' attachedRoutes)."""
    addresses: tuple[str, ...] = ()
    """Its own addresses (`--gateway-address-mode dedicated`, gateway.addressing), where
    its listeners alone are served; () in the shared mode or when it got none."""


@dataclass(frozen=True)
class Binding:
    """An accepted route on one listener: the hostnames it serves there."""

    route: Key
    gateway: Key
    listener: str
    hostnames: tuple[str, ...]
    kind: str = HTTP_ROUTE


@dataclass(frozen=True)
class ParentStatus:
    parent_ref: dict
    """The parentRef as the route wrote it, with group, kind and namespace filled in."""
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class RouteState:
    key: Key
    generation: int
    parents: tuple[ParentStatus, ...]
    route: Route | None
    """The parsed route; None when it is invalid or unsupported (not Accepted anywhere)."""
    kind: str = HTTP_ROUTE

    @property
    def id(self) -> tuple[str, Key]:
        """(kind, key): an HTTPRoute and a GRPCRoute may share a name."""
        return self.kind, self.key


@dataclass(frozen=True)
class Attachment:
    classes: dict[str, tuple[int, tuple[Condition, ...]]]
    """Conditions of each GatewayClass we answer for, with its generation, by name."""
    gateways: tuple[GatewayState, ...]
    routes: tuple[RouteState, ...]
    bindings: tuple[Binding, ...]
    controller_name: str
    """Ours: the routes' `status.parents` entries are told apart by it."""
    bound_addresses: tuple[str, ...] = ()
    """`GatewayOptions.addresses`: each Gateway's `status.addresses` when set (else the
    published ones, the VIPs)."""
    dedicated: bool = False
    """`--gateway-address-mode dedicated`: each Gateway's `status.addresses` are its own
    (`GatewayState.addresses`)."""


@dataclass(frozen=True)
class Index:
    """The objects a decision looks up, by (namespace, name)."""

    secrets: dict[Key, dict]
    services: dict[Key, dict]
    namespace_labels: dict[str, dict]
    grants: tuple[dict, ...]

    def granted(self, from_kind: str, from_namespace: str, to_kind: str, to: Key) -> bool:
        """Whether a ReferenceGrant in `to`'s namespace lets `from_kind` objects of
        `from_namespace` refer to it (grants name the target, or all of its kind)."""
        for grant in self.grants:
            if key_of(grant)[0] != to[0]:
                continue
            spec = mapping(grant.get("spec"))
            froms = mappings(spec.get("from"))
            tos = mappings(spec.get("to"))
            if not any(
                f.get("group") == GATEWAY_GROUP
                and f.get("kind") == from_kind
                and f.get("namespace") == from_namespace
                for f in froms
            ):
                continue
            if any(
                t.get("group", CORE_GROUP) == CORE_GROUP
                and t.get("kind") == to_kind
                and t.get("name") in (None, "", to[1])
                for t in tos
            ):
                return True
        return False


def index_of(
    secrets: list[dict], services: list[dict], namespaces: list[dict], grants: list[dict]
) -> Index:
    labels = {
        key_of(ns)[1]: mapping(mapping(ns.get("metadata")).get("labels"))
        for ns in namespaces
        if isinstance(ns, dict)
    }
    return Index(
        _by_key(secrets),
        _by_key(services),
        labels,
        tuple(g for g in grants if isinstance(g, dict)),
    )


def _generation(obj: dict) -> int:
    generation = mapping(obj.get("metadata")).get("generation")
    return generation if isinstance(generation, int) else 0


def _by_key(objects: Iterable[dict]) -> dict[Key, dict]:
    return {key_of(obj): obj for obj in objects if isinstance(obj, dict)}


def selector_matches(selector: dict, labels: dict) -> bool:
    """A metav1.LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists,
    DoesNotExist), all of them; an empty selector matches everything."""
    match_labels = mapping(selector.get("matchLabels"))
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expression in mappings(selector.get("matchExpressions")):
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def intersect(listener: str | None, route: str) -> str | None:
    """The hostnames both a listener hostname (None: any) and a route hostname match, as
    the more specific of the two; None when they share none. A wildcard `*.s` matches
    any name of one or more labels before `.s`."""
    if listener is None:
        return route
    if listener == route:
        return route
    if listener.startswith("*.") and route.endswith(listener[1:]):
        return route
    if route.startswith("*.") and listener.endswith(route[1:]):
        return listener
    return None


def hostnames_on(listener: Listener, route_hostnames: tuple[str, ...]) -> tuple[str, ...]:
    """The hostnames a route serves on a listener (ANY_HOST: all); () when none."""
    if not route_hostnames:
        return (listener.hostname or ANY_HOST,)
    shared = (intersect(listener.hostname, h) for h in route_hostnames)
    return tuple(sorted({h for h in shared if h is not None}))


def attach(
    gateway_classes: list[dict],
    gateways: list[dict],
    http_routes: list[dict],
    index: Index,
    options: GatewayOptions,
    grpc_routes: Iterable[dict] = (),
) -> Attachment:
    classes, ours = _classes(gateway_classes, options)
    served = [
        g
        for g in gateways
        if isinstance(g, dict) and mapping(g.get("spec")).get("gatewayClassName") in ours
    ]
    certificates: dict[tuple[int, str | None], Listener] = {}
    by_age = {key_of(g): _gateway(g, index, options, certificates) for g in sorted(served, key=age)}
    dedicated = options.address_mode == DEDICATED
    if dedicated:
        by_age = _dedicated(by_age, _by_key(served), options.addresses)
    states = {key: by_age[key] for key in sorted(by_age)}
    attached: dict[tuple[Key, str], int] = {}
    routes, bindings = [], []
    for kind, objects in ((HTTP_ROUTE, http_routes), (GRPC_ROUTE, grpc_routes)):
        for route_obj in sorted((o for o in objects if isinstance(o, dict)), key=key_of):
            state, route_bindings = _route(route_obj, kind, states, index)
            if state.parents:
                routes.append(state)
                bindings.extend(route_bindings)
    routes, bindings = _kind_conflicts(routes, bindings, http_routes, grpc_routes)
    # Per route, once: a scan of every binding per route took 1 s at 1,000 routes.
    listeners_of: dict[tuple[str, Key], set[tuple[Key, str]]] = {}
    for b in bindings:
        listeners_of.setdefault((b.kind, b.route), set()).add((b.gateway, b.listener))
    for state in routes:
        for listener_key in listeners_of.get(state.id, ()):
            attached[listener_key] = attached.get(listener_key, 0) + 1
    gateway_states = tuple(
        replace(
            state,
            attached_routes={
                lst.name: attached.get((state.key, lst.name), 0) for lst in state.listeners
            },
        )
        for state in states.values()
    )
    return Attachment(
        classes,
        gateway_states,
        tuple(routes),
        tuple(bindings),
        options.controller_name,
        options.addresses,
        dedicated,
    )


def _dedicated(
    by_age: dict[Key, GatewayState], objects: dict[Key, dict], pool: tuple[str, ...]
) -> dict[Key, GatewayState]:
    """The Gateways with their own addresses (gateway.addressing); one that gets none is
    not Programmed (AddressNotAssigned). Only Gateways that could serve take part: Accepted,
    and naming no address outside the pool (AddressNotUsable already)."""
    taking = [
        (key, named_addresses(mapping(objects[key].get("spec")).get("addresses")))
        for key, state in by_age.items()
        if c.holds(state.conditions, c.ACCEPTED)
        and not any(x.reason == c.ADDRESS_NOT_USABLE for x in state.conditions)
    ]
    result = dict(by_age)
    for key, assigned in assign(taking, pool).items():
        state = by_age[key]
        if isinstance(assigned, str):
            refused = Condition(c.PROGRAMMED, False, c.ADDRESS_NOT_ASSIGNED, assigned)
            conditions = tuple(refused if x.type == c.PROGRAMMED else x for x in state.conditions)
            result[key] = replace(state, conditions=conditions)
        else:
            result[key] = replace(state, addresses=assigned)
    return result


def _classes(
    gateway_classes: list[dict], options: GatewayOptions
) -> tuple[dict[str, tuple[int, tuple[Condition, ...]]], set[str]]:
    classes, ours = {}, set()
    for obj in gateway_classes:
        if not isinstance(obj, dict):
            continue
        name = key_of(obj)[1]
        if mapping(obj.get("spec")).get("controllerName") != options.controller_name:
            continue
        if name == options.gateway_class:
            ours.add(name)
            accepted = Condition(c.ACCEPTED, True, c.ACCEPTED, "served by this edge")
        else:
            accepted = Condition(
                c.ACCEPTED,
                False,
                c.UNSUPPORTED,
                f"this edge serves the GatewayClass {options.gateway_class} only",
            )
        classes[name] = (_generation(obj), (accepted,))
    return classes, ours


def age(obj: dict) -> tuple:
    """Oldest first (RFC 3339 times sort as text), then namespace/name: the spec's order."""
    return (str(mapping(obj.get("metadata")).get("creationTimestamp") or ""), *key_of(obj))


def _gateway(
    obj: dict,
    index: Index,
    options: GatewayOptions,
    certificates: dict[tuple[int, str | None], Listener],
) -> GatewayState:
    """`certificates`: the HTTPS listener holding each (port, hostname) so far, among
    the Gateways before this one by age; this one's are added. Only in the shared mode:
    a dedicated Gateway's listeners are served on its own addresses, with certificates
    scoped by address, so they never merge with another Gateway's."""
    key = key_of(obj)
    spec = mapping(obj.get("spec"))
    listeners = _conflicts(
        [_listener(key, each, index, options) for each in mappings(spec.get("listeners"))]
    )
    if options.address_mode != DEDICATED:
        listeners = _across_gateways(listeners, certificates)
    valid = [lst for lst in listeners if c.holds(lst.conditions, c.ACCEPTED)]
    unsupported, unusable = _addresses(spec.get("addresses"), options)
    parameters = mapping(mapping(spec.get("infrastructure")).get("parametersRef"))
    if parameters:
        # The edge reads no parameters object: whatever one names, it would be ignored.
        accepted = Condition(
            c.ACCEPTED,
            False,
            c.INVALID_PARAMETERS,
            "spec.infrastructure.parametersRef: the edge takes no parameters",
        )
    elif unsupported:
        accepted = Condition(c.ACCEPTED, False, c.UNSUPPORTED_ADDRESS, unsupported)
    elif len(valid) < len(listeners):
        accepted = Condition(
            c.ACCEPTED, len(valid) > 0, c.LISTENERS_NOT_VALID, "some listeners are not valid"
        )
    else:
        accepted = Condition(c.ACCEPTED, True, c.ACCEPTED)
    programmed_any = accepted.status and any(lst.programmed for lst in listeners)
    if unusable and accepted.status:
        programmed = Condition(c.PROGRAMMED, False, c.ADDRESS_NOT_USABLE, unusable)
    else:
        programmed = Condition(
            c.PROGRAMMED,
            programmed_any,
            c.PROGRAMMED if programmed_any else c.INVALID,
            "" if programmed_any else "no listener is programmed",
        )
    return GatewayState(key, _generation(obj), (accepted, programmed), tuple(listeners))


def _addresses(requested: Any, options: GatewayOptions) -> tuple[str, str]:
    """Why a Gateway's `spec.addresses` is not supported (Accepted False), and why it is
    not usable (Programmed False); "" each when it is. Listeners bind every address of
    `--gateway-address`, so a Gateway may name some of them, never others: without the
    flag, nginx's own listen addresses are not ours to hand out per Gateway."""
    if not requested:
        return "", ""
    if not options.addresses:
        return "spec.addresses: the edge binds no --gateway-address to choose from", ""
    bound = {ipaddress.ip_address(a) for a in options.addresses}
    unusable = []
    for entry in requested if isinstance(requested, list) else [requested]:
        entry = mapping(entry)
        kind, value = entry.get("type", "IPAddress"), entry.get("value")
        if kind == "IPAddress" and value is None and options.address_mode == DEDICATED:
            continue  # any address of the pool: gateway.addressing picks one
        try:
            if kind != "IPAddress" or not isinstance(value, str):
                raise ValueError(kind)
            address = ipaddress.ip_address(value)
        except ValueError:
            return f"spec.addresses: only IPAddress values are served, not {value!s:.60}", ""
        if address not in bound:
            unusable.append(str(address))
    if unusable:
        return "", (
            f"spec.addresses {', '.join(unusable)}: not an address the edge binds "
            f"({', '.join(options.addresses)})"
        )
    return "", ""


def _listener(gateway: Key, spec: dict, index: Index, options: GatewayOptions) -> Listener:
    name, port, protocol = spec.get("name"), spec.get("port"), spec.get("protocol")
    hostname = spec.get("hostname")
    refused: tuple[str, str] | None = None
    try:
        grammar.dns1123_subdomain(name, "listener name")
        grammar.port_number(port, f"listener {name} port")
        if hostname is not None:
            grammar.host(hostname, f"listener {name} hostname")
    except Invalid as error:
        refused = (c.UNSUPPORTED_VALUE, str(error))
    exposed = {HTTP: options.http_port, HTTPS: options.https_port}
    if refused is None and protocol not in exposed:
        refused = (c.UNSUPPORTED_PROTOCOL, f"protocol {protocol!s:.40} is not served (HTTP, HTTPS)")
    elif refused is None and port != exposed[protocol]:
        refused = (
            c.PORT_UNAVAILABLE,
            f"the edge carries {protocol} on port {exposed[protocol]} only",
        )
    tls = mapping(spec.get("tls"))
    if refused is None and protocol == HTTPS and tls.get("mode", "Terminate") != "Terminate":
        refused = (c.UNSUPPORTED_VALUE, "tls.mode Passthrough is not served")
    certificates, unresolved = (
        _certificates(gateway, tls, index) if protocol == HTTPS else ((), None)
    )
    if refused is None and protocol == HTTPS and not tls.get("certificateRefs"):
        refused = (c.UNSUPPORTED_VALUE, "an HTTPS listener needs tls.certificateRefs")
    allowed = mapping(spec.get("allowedRoutes"))
    kinds, bad_kinds = _kinds(allowed.get("kinds"))
    namespaces = mapping(allowed.get("namespaces"))
    allowed_from = namespaces.get("from", "Same")
    selector = mapping(namespaces.get("selector")) if allowed_from == "Selector" else None
    if refused is None and allowed_from not in ("Same", "All", "Selector"):
        refused = (c.UNSUPPORTED_VALUE, f"allowedRoutes.namespaces.from {allowed_from!s:.40}")
    if unresolved is None and bad_kinds:
        unresolved = (c.INVALID_ROUTE_KINDS, f"route kinds not served: {', '.join(bad_kinds)}")
    accepted = Condition(c.ACCEPTED, refused is None, *(refused or (c.ACCEPTED, "")))
    resolved = Condition(
        c.RESOLVED_REFS, unresolved is None, *(unresolved or (c.RESOLVED_REFS, ""))
    )
    ok = refused is None and unresolved is None
    programmed = Condition(c.PROGRAMMED, ok, c.PROGRAMMED if ok else c.INVALID)
    return Listener(
        gateway,
        name if isinstance(name, str) else "",
        port if isinstance(port, int) else 0,
        protocol if isinstance(protocol, str) else "",
        hostname if isinstance(hostname, str) else None,
        certificates,
        (accepted, resolved, programmed),
        kinds,
        allowed_from,
        selector,
    )


def _kinds(value: Any) -> tuple[tuple[str, ...], list[str]]:
    """The route kinds a listener allows that the edge serves, and those it does not."""
    if value is None:
        return ROUTE_KINDS, []
    good, bad = [], []
    for kind in mappings(value):
        if kind.get("group", GATEWAY_GROUP) == GATEWAY_GROUP and kind.get("kind") in ROUTE_KINDS:
            good.append(kind["kind"])
        else:
            bad.append(f"{kind.get('group', GATEWAY_GROUP)}/{kind.get('kind')}")
    return tuple(dict.fromkeys(good)), bad


def _certificates(
    gateway: Key, tls: dict, index: Index
) -> tuple[tuple[Key, ...], tuple[str, str] | None]:
    found = []
    for ref in mappings(tls.get("certificateRefs")):
        target = object_ref(ref, gateway[0], "Secret")
        if target is None:
            return (), (c.INVALID_CERTIFICATE_REF, "certificateRefs must name Secrets")
        try:  # the pair's file in nginx's configuration is named after them
            grammar.dns1123_label(target[0], "certificateRefs namespace")
            grammar.dns1123_subdomain(target[1], "certificateRefs name")
        except Invalid as error:
            return (), (c.INVALID_CERTIFICATE_REF, str(error))
        if target[0] != gateway[0] and not index.granted("Gateway", gateway[0], "Secret", target):
            return (), (
                c.REF_NOT_PERMITTED,
                f"no ReferenceGrant in {target[0]} allows the Secret {target[1]}",
            )
        try:
            read_tls_secret(index.secrets.get(target))
        except Invalid as error:
            return (), (c.INVALID_CERTIFICATE_REF, f"Secret {target[0]}/{target[1]}: {error}")
        found.append(target)
    return tuple(found), None


def _conflicts(listeners: list[Listener]) -> list[Listener]:
    """Listeners of one Gateway that share a port: the same hostname, or HTTP beside
    HTTPS, conflict, and every one involved is then Conflicted and not programmed."""
    result = []
    for listener in listeners:
        others = [o for o in listeners if o is not listener and o.port == listener.port]
        reason = None
        if any(o.protocol != listener.protocol for o in others):
            reason = c.PROTOCOL_CONFLICT
        elif any(o.hostname == listener.hostname for o in others):
            reason = c.HOSTNAME_CONFLICT
        if reason is None:
            conflict = Condition(c.CONFLICTED, False, c.NO_CONFLICTS)
            result.append(_with(listener, conflict))
        else:
            conflict = Condition(c.CONFLICTED, True, reason)
            not_programmed = Condition(c.PROGRAMMED, False, c.INVALID, "conflicted")
            result.append(_with(listener, conflict, not_programmed))
    return result


def _across_gateways(
    listeners: list[Listener], certificates: dict[tuple[int, str | None], Listener]
) -> list[Listener]:
    """Listeners of several Gateways on one port merge: one nginx serves them all. But
    one server presents one certificate: an HTTPS listener for a hostname that an older
    Gateway's listener (then first by namespace/name) serves on that port with other
    certificates is Conflicted (HostnameConflict) and not programmed."""
    result = []
    for listener in listeners:
        if listener.protocol == HTTPS and listener.programmed:
            holder = certificates.setdefault((listener.port, listener.hostname), listener)
            if holder.certificates != listener.certificates:
                namespace, name = holder.gateway
                message = (
                    f"Gateway {namespace}/{name} (older, or as old and first by "
                    f"namespace/name) serves {listener.hostname or 'any hostname'} on port "
                    f"{listener.port} with other certificates"
                )
                conflict = Condition(c.CONFLICTED, True, c.HOSTNAME_CONFLICT, message)
                not_programmed = Condition(c.PROGRAMMED, False, c.INVALID, "conflicted")
                listener = _with(listener, conflict, not_programmed)
        result.append(listener)
    return result


def _with(listener: Listener, *replacements: Condition) -> Listener:
    replaced = {r.type: r for r in replacements}
    kept = tuple(replaced.pop(x.type, x) for x in listener.conditions)
    return Listener(
        listener.gateway,
        listener.name,
        listener.port,
        listener.protocol,
        listener.hostname,
        listener.certificates,
        kept + tuple(replaced.values()),
        listener.supported_kinds,
        listener.allowed_from,
        listener.selector,
    )


def _admits(listener: Listener, route_namespace: str, kind: str, index: Index) -> bool:
    if not listener.takes_routes or kind not in listener.supported_kinds:
        return False
    if listener.allowed_from == "All":
        return True
    if listener.allowed_from == "Same":
        return route_namespace == listener.gateway[0]
    labels = index.namespace_labels.get(route_namespace)
    return labels is not None and selector_matches(listener.selector or {}, labels)


def _overlap(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    return any(ANY_HOST in (a, b) or intersect(a, b) is not None for a in first for b in second)


def _kind_conflicts(
    routes: list[RouteState],
    bindings: list[Binding],
    http_routes: Iterable[dict],
    grpc_routes: Iterable[dict],
) -> tuple[list[RouteState], list[Binding]]:
    """The spec (GRPCRoute hostnames): on one listener, an HTTPRoute and a GRPCRoute whose
    hostnames intersect cannot both be accepted; the older (then first by
    namespace/name) is. The other loses its bindings there; a parent left without any
    is not Accepted (reason Conflicted)."""
    ages = {
        (kind, key_of(obj)): age(obj)
        for kind, objects in ((HTTP_ROUTE, http_routes), (GRPC_ROUTE, grpc_routes))
        for obj in objects
        if isinstance(obj, dict)
    }
    kept: list[Binding] = []
    # The kept bindings per (gateway, listener, kind), in kept order: a rival is of the
    # other kind on the same listener (a scan of every kept one was quadratic).
    kept_on: dict[tuple[Key, str, str], list[Binding]] = {}
    lost: dict[tuple[str, Key], dict[Key, Binding]] = {}
    for binding in sorted(bindings, key=lambda b: ages[(b.kind, b.route)]):
        other_kind = GRPC_ROUTE if binding.kind == HTTP_ROUTE else HTTP_ROUTE
        rival = next(
            (
                other
                for other in kept_on.get((binding.gateway, binding.listener, other_kind), ())
                if _overlap(other.hostnames, binding.hostnames)
            ),
            None,
        )
        if rival is None:
            kept.append(binding)
            kept_on.setdefault((binding.gateway, binding.listener, binding.kind), []).append(
                binding
            )
        else:
            lost.setdefault((binding.kind, binding.route), {})[binding.gateway] = rival
    if not lost:
        return routes, bindings
    states = []
    for state in routes:
        rivals = lost.get(state.id, {})
        parents = []
        for parent in state.parents:
            gateway = (parent.parent_ref["namespace"], parent.parent_ref.get("name"))
            rival = rivals.get(gateway)
            still = any((b.kind, b.route, b.gateway) == (*state.id, gateway) for b in kept)
            if rival is not None and not still and c.holds(parent.conditions, c.ACCEPTED):
                name = f"{rival.kind} {rival.route[0]}/{rival.route[1]}"
                refused = Condition(
                    c.ACCEPTED,
                    False,
                    c.CONFLICTED,
                    f"listener {rival.listener} already serves these hostnames with {name} "
                    "(older, or same age and first by namespace/name)",
                )
                conditions = tuple(
                    refused if x.type == c.ACCEPTED else x for x in parent.conditions
                )
                parent = ParentStatus(parent.parent_ref, conditions)
            parents.append(parent)
        states.append(replace(state, parents=tuple(parents)))
    return states, kept


def _route(
    obj: dict, route_kind: str, gateways: dict[Key, GatewayState], index: Index
) -> tuple[RouteState, list[Binding]]:
    key = key_of(obj)
    parsed = parse_grpc_route(obj) if route_kind == GRPC_ROUTE else parse_route(obj)
    route = parsed if isinstance(parsed, Route) else None
    resolved = _resolved_refs(route, index) if route else None
    parents, bindings = [], []
    for ref in mappings(mapping(obj.get("spec")).get("parentRefs")):
        group, kind = ref.get("group", GATEWAY_GROUP), ref.get("kind", "Gateway")
        gateway_key = (ref.get("namespace", key[0]), ref.get("name"))
        if (group, kind) != (GATEWAY_GROUP, "Gateway") or gateway_key not in gateways:
            continue  # another controller's parent
        shown = {**ref, "group": group, "kind": kind, "namespace": gateway_key[0]}
        if route is None:
            refused = Condition(c.ACCEPTED, False, c.UNSUPPORTED_VALUE, str(parsed))
            parents.append(ParentStatus(shown, (refused,)))
            continue
        accepted, found = _bind(route, ref, gateways[gateway_key], index)
        parents.append(ParentStatus(shown, (accepted, resolved)))
        bindings.extend(found)
    return RouteState(key, _generation(obj), tuple(parents), route, route_kind), bindings


def _bind(
    route: Route, ref: dict, gateway: GatewayState, index: Index
) -> tuple[Condition, list[Binding]]:
    if not c.holds(gateway.conditions, c.ACCEPTED):
        # Accepted False: the Gateway makes no configuration, so nothing of it serves.
        return Condition(c.ACCEPTED, False, c.NO_MATCHING_PARENT, "the Gateway is not Accepted"), []
    section, port = ref.get("sectionName"), ref.get("port")
    selected = [
        lst for lst in gateway.listeners if section in (None, lst.name) and port in (None, lst.port)
    ]
    if not selected:
        return Condition(c.ACCEPTED, False, c.NO_MATCHING_PARENT, "no listener matches"), []
    admitting = [lst for lst in selected if _admits(lst, route.namespace, route.kind, index)]
    if not admitting:
        return Condition(c.ACCEPTED, False, c.NOT_ALLOWED_BY_LISTENERS), []
    bindings = []
    for listener in admitting:
        hostnames = hostnames_on(listener, route.hostnames)
        if hostnames:
            key = (route.namespace, route.name)
            bindings.append(Binding(key, listener.gateway, listener.name, hostnames, route.kind))
    if not bindings:
        return Condition(c.ACCEPTED, False, c.NO_MATCHING_LISTENER_HOSTNAME), []
    return Condition(c.ACCEPTED, True, c.ACCEPTED), bindings


def _resolved_refs(route: Route, index: Index) -> Condition:
    """The route's ResolvedRefs: the first backendRef that cannot be used says why."""
    for rule in route.rules:
        for backend in (*rule.backends, *rule.filters.mirrors):
            reason = backend_problem(route.namespace, backend, index, route.kind)
            if reason is not None:
                return Condition(c.RESOLVED_REFS, False, *reason)
    return Condition(c.RESOLVED_REFS, True, c.RESOLVED_REFS)


def backend_problem(
    namespace: str, backend: Any, index: Index, kind: str = HTTP_ROUTE
) -> tuple[str, str] | None:
    """Why a backendRef of a route of `kind` cannot be used (reason, message), or None."""
    if backend.kind != "Service" or backend.group != CORE_GROUP:
        return c.INVALID_KIND, f"backendRef {backend.group}/{backend.kind} is not a Service"
    target = (backend.namespace, backend.name)
    if backend.namespace != namespace and not index.granted(kind, namespace, "Service", target):
        return (
            c.REF_NOT_PERMITTED,
            f"no ReferenceGrant in {backend.namespace} allows {backend.name}",
        )
    service = index.services.get(target)
    if service is None:
        return c.BACKEND_NOT_FOUND, f"no Service {backend.namespace}/{backend.name}"
    ports = mappings(mapping(service.get("spec")).get("ports"))
    if backend.port not in {port.get("port") for port in ports}:
        return (
            c.BACKEND_NOT_FOUND,
            f"Service {backend.namespace}/{backend.name} has no port {backend.port}",
        )
    return None
