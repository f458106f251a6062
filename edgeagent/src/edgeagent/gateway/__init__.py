"""The Gateway API (gateway.networking.k8s.io) on the edge, beside Ingress.

Pure, like `edgeagent.model`: Kubernetes objects in, decisions out. `references` says which
Services and Secrets the routes and Gateways name (what the controller's relevance filter
and its Secret filter must let through); `options` holds what the operator sets.
"""
