"""The Gateway API (gateway.networking.k8s.io) on the edge, beside Ingress.

Pure, like `edgeagent.model`: Kubernetes objects in, decisions out. `references` says which
Services and Secrets the routes and Gateways name (what the controller's relevance filter
and its Secret filter must let through); `routes` checks an HTTPRoute's spec, `grpc_routes` a
GRPCRoute's into the same; `attachment` decides which GatewayClasses, Gateways, listeners
and routes the edge
takes, with the conditions the spec names for their status (`conditions`); `options`
holds what the operator sets; `addressing` gives each Gateway its own address in the
dedicated address mode.
"""
