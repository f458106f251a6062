"""The lab's annotated Ingresses (lab/manifests/annotated.yaml), read from the manifest itself:
their hosts and the TLS Secret's certificate are what the checks ask for and trust, and the
checks run only where the API holds every one of those Ingresses (the Docker lab, molecule's
Docker scenario, the VM lab), never on a user's cluster, which has none of them. lab/ is in
a checkout only (galaxy.yml leaves it out of the collection): nothing here reads it before
those checks are known to run.
"""

from __future__ import annotations

import functools
import importlib.util
from types import ModuleType

import yaml
from deployment import REPO
from kubernetes import client, config
from urllib3.exceptions import HTTPError

MANIFEST = REPO / "lab" / "manifests" / "annotated.yaml"
BACKEND = REPO / "lab" / "backend.py"


@functools.cache
def objects() -> tuple[dict, ...]:
    return tuple(o for o in yaml.safe_load_all(MANIFEST.read_text()) if o)


def _named(kind: str, name: str) -> dict:
    return next(o for o in objects() if o["kind"] == kind and o["metadata"]["name"] == name)


def host(ingress: str) -> str:
    """The host of one of the manifest's Ingresses (each has one rule)."""
    return _named("Ingress", ingress)["spec"]["rules"][0]["host"]


def path(ingress: str) -> str:
    """The path of one of the manifest's Ingresses (each has one)."""
    return _named("Ingress", ingress)["spec"]["rules"][0]["http"]["paths"][0]["path"]


def certificate(secret: str) -> str:
    """The PEM certificate of one of the manifest's TLS Secrets."""
    return _named("Secret", secret)["stringData"]["tls.crt"]


@functools.cache
def backend() -> ModuleType:
    """lab/backend.py, the app behind the Ingresses: its auth token and slow path."""
    spec = importlib.util.spec_from_file_location("lab_backend", BACKEND)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def applied(kubeconfig: str) -> bool:
    """Whether the API server of kubeconfig holds every Ingress of the manifest; False
    without a kubeconfig or an answer (the Gateway API checks report an API that is down),
    and outside a checkout (an installed collection has no lab/)."""
    if not kubeconfig or not MANIFEST.exists():
        return False
    wanted = {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in objects()
        if o["kind"] == "Ingress"
    }
    try:
        api = client.NetworkingV1Api(config.new_client_from_config(kubeconfig))
        listed = api.list_ingress_for_all_namespaces(_request_timeout=10)
    except (OSError, HTTPError, client.ApiException, config.ConfigException):
        return False
    return wanted <= {(i.metadata.namespace, i.metadata.name) for i in listed.items}
