"""Kubernetes objects as API JSON dicts, written briefly: what tests feed model.build."""

import base64
import pathlib
import subprocess

from edgeagent.model import CertPair


def backend(service: str, port: int | str) -> dict:
    key = "number" if isinstance(port, int) else "name"
    return {"service": {"name": service, "port": {key: port}}}


def path(value: str | None, service: str, port: int | str = 80, kind: str = "Prefix") -> dict:
    entry = {"pathType": kind, "backend": backend(service, port)}
    if value is not None:
        entry["path"] = value
    return entry


def rule(host: str | None, *paths: dict) -> dict:
    entry = {"http": {"paths": list(paths)}}
    if host is not None:
        entry["host"] = host
    return entry


def ingress(
    name: str,
    *rules: dict,
    namespace: str = "default",
    ingress_class: str | None = "edge",
    created: str | None = None,
    annotations: dict | None = None,
    tls: list[dict] | None = None,
    default_backend: dict | None = None,
) -> dict:
    metadata = {"name": name, "namespace": namespace}
    if created:
        metadata["creationTimestamp"] = created
    if annotations:
        metadata["annotations"] = annotations
    spec = {}
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    if rules:
        spec["rules"] = list(rules)
    if tls:
        spec["tls"] = tls
    if default_backend:
        spec["defaultBackend"] = default_backend
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    }


def service(name: str, ports: dict[str, int] | None = None, namespace: str = "default") -> dict:
    """ports: {port name: port number}; the default is one port "http" 80."""
    ports = {"http": 80} if ports is None else ports
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports.items()]},
    }


def endpoint_slice(
    service_name: str,
    endpoints: list[tuple[str, bool | None]],
    port: int,
    port_name: str = "http",
    namespace: str = "default",
    name: str | None = None,
    address_type: str = "IPv4",
) -> dict:
    """endpoints: (address, ready) pairs; ready None leaves the condition unset."""
    listed = []
    for address, ready in endpoints:
        conditions = {} if ready is None else {"ready": ready}
        listed.append({"addresses": [address], "conditions": conditions})
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-slice",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": address_type,
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": listed,
    }


def tls_secret(name: str, pair: CertPair, namespace: str = "default") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {
            "tls.crt": base64.b64encode(pair.certificate_pem).decode(),
            "tls.key": base64.b64encode(pair.key_pem).decode(),
        },
    }


def openssl(*arguments: str) -> None:
    subprocess.run(["openssl", *arguments], check=True, capture_output=True)


def openssl_pair(directory: pathlib.Path, bits: int, digest: str) -> tuple[bytes, bytes]:
    """A leaf of `bits` RSA signed by a CA with `digest`, made by the openssl command
    (which still signs with SHA-1, unlike `cryptography`). OpenSSL does not judge the
    signature of a self-signed certificate, hence the CA."""
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    request, certificate, key = directory / "tls.csr", directory / "tls.crt", directory / "tls.key"
    openssl(
        *("req", "-x509", "-nodes", "-newkey", "rsa:2048", "-subj", "/CN=ca.example"),
        *("-days", "1", "-keyout", str(ca_key), "-out", str(ca)),
    )
    openssl(
        *("req", "-new", "-nodes", "-newkey", f"rsa:{bits}", "-subj", "/CN=weak.example"),
        *("-keyout", str(key), "-out", str(request)),
    )
    openssl(
        *("x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key)),
        *("-CAcreateserial", "-days", "1", f"-{digest}", "-out", str(certificate)),
    )
    return certificate.read_bytes() + ca.read_bytes(), key.read_bytes()
