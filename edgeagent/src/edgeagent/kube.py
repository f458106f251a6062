"""The connection to the Kubernetes API: one `ApiClient` shared by every thread.

Three ways in, chosen in this order:

1. `--server URL` (with `--token-file` and `--ca-file`): explicit, for an edge node that was
   handed a ServiceAccount token. The token file is read again before every request, so a
   rotated token is picked up without a restart.
2. `--kubeconfig FILE` (or $KUBECONFIG / ~/.kube/config when nothing else is given).
3. The in-cluster ServiceAccount, when the agent runs in a pod
   ($KUBERNETES_SERVICE_HOST is set and no kubeconfig is named).

The client's connection pool is sized for the agent's threads (the informers, five or one
per kind and watched namespace, plus the controller, the status and event reporters) so
that no thread waits for a connection.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field

import kubernetes

from edgeagent.options import option

# Connections besides the informers' watches: the controller's reads, status, Events.
POOL_SPARE = 11


@dataclass(frozen=True)
class ConnectionSettings:
    kubeconfig: str | None = field(
        default=None,
        metadata=option(
            "kubeconfig",
            "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster "
            "ServiceAccount)",
            "FILE",
        ),
    )
    """Path of a kubeconfig; None: $KUBECONFIG or ~/.kube/config, or in-cluster."""
    server: str | None = field(
        default=None,
        metadata=option(
            "server",
            "API server URL; with --token-file and --ca-file instead of a kubeconfig",
            "URL",
        ),
    )
    """API server URL; overrides the kubeconfig when given."""
    token_file: str | None = field(
        default=None,
        metadata=option(
            "token-file", "bearer token file for --server, re-read on every request", "FILE"
        ),
    )
    """Bearer token for `server`, re-read before every request (tokens rotate)."""
    ca_file: str | None = field(
        default=None,
        metadata=option(
            "ca-file", "CA bundle of the API server for --server (default: the system's)", "FILE"
        ),
    )
    """CA bundle that signed the API server's certificate, for `server`; None: the
    system's trust store."""


def _read_token(path: str) -> str:
    return pathlib.Path(path).read_text().strip()


def api_client(settings: ConnectionSettings, watches: int = 5) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    if settings.server:
        configuration.host = settings.server
        if settings.ca_file:
            configuration.ssl_ca_cert = settings.ca_file
        if settings.token_file:
            token_file = settings.token_file
            configuration.api_key = {"BearerToken": _read_token(token_file)}
            configuration.api_key_prefix = {"BearerToken": "Bearer"}

            def refresh(config: kubernetes.client.Configuration) -> None:
                config.api_key["BearerToken"] = _read_token(token_file)

            configuration.refresh_api_key_hook = refresh
    elif settings.kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_kube_config(
            config_file=settings.kubeconfig, client_configuration=configuration
        )
    else:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = watches + POOL_SPARE
    return kubernetes.client.ApiClient(configuration)
