"""edgeagent: Kubernetes Ingress to nginx on edge nodes."""
