"""The condition types and reasons of the Gateway API's status (apis/v1), as used here.

One place for the strings the spec fixes, so the model and the tests name them alike.
"""

from __future__ import annotations

from dataclasses import dataclass

ACCEPTED = "Accepted"
PROGRAMMED = "Programmed"
RESOLVED_REFS = "ResolvedRefs"
CONFLICTED = "Conflicted"

# GatewayClass and Gateway
INVALID = "Invalid"
UNSUPPORTED = "Unsupported"
LISTENERS_NOT_VALID = "ListenersNotValid"
UNSUPPORTED_ADDRESS = "UnsupportedAddress"
ADDRESS_NOT_USABLE = "AddressNotUsable"
ADDRESS_NOT_ASSIGNED = "AddressNotAssigned"
INVALID_PARAMETERS = "InvalidParameters"
# Listener
PORT_UNAVAILABLE = "PortUnavailable"
UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
UNSUPPORTED_VALUE = "UnsupportedValue"
INVALID_CERTIFICATE_REF = "InvalidCertificateRef"
INVALID_ROUTE_KINDS = "InvalidRouteKinds"
REF_NOT_PERMITTED = "RefNotPermitted"
HOSTNAME_CONFLICT = "HostnameConflict"
PROTOCOL_CONFLICT = "ProtocolConflict"
NO_CONFLICTS = "NoConflicts"
# Route
NOT_ALLOWED_BY_LISTENERS = "NotAllowedByListeners"
NO_MATCHING_LISTENER_HOSTNAME = "NoMatchingListenerHostname"
NO_MATCHING_PARENT = "NoMatchingParent"
INVALID_KIND = "InvalidKind"
BACKEND_NOT_FOUND = "BackendNotFound"
# Ours, on a route that loses a host or path to an Ingress (docs/gateway-api.md): a
# domain-prefixed type, as the API allows for implementation-specific conditions.
INGRESS_CONFLICT = "edgeagent.io/IngressConflict"
INGRESS_WINS = "IngressWins"


@dataclass(frozen=True)
class Condition:
    """One condition of a status, without the times and generation the writer adds."""

    type: str
    status: bool
    reason: str
    message: str = ""

    @property
    def status_text(self) -> str:
        return "True" if self.status else "False"


def holds(conditions: tuple[Condition, ...], condition_type: str) -> bool:
    """Whether the condition of that type is there and True."""
    return any(c.type == condition_type and c.status for c in conditions)
