"""One-shot reads of a live cluster for the offline commands (`edgeagent migrate`): the
Ingresses and IngressClasses as `model.Inputs`, and a ConfigMap's data.

The Kubernetes client is imported only when a cluster is read, so the commands that read
manifests never load it.
"""

from __future__ import annotations

from edgeagent.model import Inputs
from edgeagent.resources import BY_NAME

# A one-shot command waits this long for each answer, then says so (a dead network
# must not hang it).
REQUEST_TIMEOUT = 30
READ = ("ingresses", "ingress_classes")


class ClusterError(Exception):
    """The cluster could not be read; the message says which request failed and why."""


def ingresses(kubeconfig: str | None) -> Inputs:
    client = _client(kubeconfig)
    lists = {}
    for name in READ:
        api_class, method = BY_NAME[name].list_method
        lists[name] = client.sanitize_for_serialization(
            _call(client, api_class, method, f"listing {BY_NAME[name].plural}").items
        )
    return Inputs(**lists)


def configmap(kubeconfig: str | None, namespace: str, name: str) -> dict:
    client = _client(kubeconfig)
    found = _call(
        client,
        "CoreV1Api",
        "read_namespaced_config_map",
        f"reading ConfigMap {namespace}/{name}",
        name,
        namespace,
    )
    return dict(found.data or {})


def _client(kubeconfig: str | None):
    import kubernetes

    from edgeagent.kube import ConnectionSettings, api_client

    try:
        return api_client(ConnectionSettings(kubeconfig=kubeconfig), watches=0)
    except (OSError, kubernetes.config.ConfigException) as error:
        raise ClusterError(f"kubeconfig {kubeconfig or '(default)'}: {error}") from None


def _call(client, api_class: str, method: str, what: str, *args):
    import kubernetes
    import urllib3

    api = getattr(kubernetes.client, api_class)(client)
    try:
        return getattr(api, method)(*args, _request_timeout=REQUEST_TIMEOUT)
    except kubernetes.client.ApiException as error:
        raise ClusterError(f"{what}: {error.status} {error.reason}") from None
    except urllib3.exceptions.HTTPError as error:
        raise ClusterError(f"{what}: {error}") from None
