"""Ingresses written in the apiVersions Kubernetes 1.22 removed (`extensions/v1beta1`,
`networking.k8s.io/v1beta1`), read as `networking.k8s.io/v1`.

Manifests of that age are common among ingress-nginx users (a quarter of the Ingresses in
../shared/notes/ingress-nginx-usage.md), and the API server converted them the same way
while it still served those versions: `serviceName`/`servicePort` become
`service.name`/`service.port.number` (a number) or `.name` (a port name), `spec.backend`
becomes `spec.defaultBackend`, and a path without `pathType` gets v1beta1's default,
`ImplementationSpecific`. The conversion changes nothing else and validates nothing:
`model.build` judges the result as any v1 Ingress. Pure: no I/O.
"""

import copy

V1 = "networking.k8s.io/v1"
OLD_VERSIONS = ("extensions/v1beta1", "networking.k8s.io/v1beta1")


def to_v1(obj: dict) -> tuple[dict, str]:
    """The Ingress as v1, and one line saying what the conversion changed."""
    converted = copy.deepcopy(obj)
    old_version = converted.get("apiVersion")
    converted["apiVersion"] = V1
    changes: list[str] = []
    spec = converted.get("spec")
    if isinstance(spec, dict):
        if "backend" in spec:
            spec["defaultBackend"] = _backend(spec.pop("backend"), "spec.backend", changes)
            changes.append("spec.backend -> spec.defaultBackend")
        rules = spec.get("rules")
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            http = rule.get("http") if isinstance(rule, dict) else None
            paths = http.get("paths") if isinstance(http, dict) else None
            for j, entry in enumerate(paths if isinstance(paths, list) else []):
                if not isinstance(entry, dict):
                    continue
                where = f"spec.rules[{i}].http.paths[{j}]"
                if "backend" in entry:
                    entry["backend"] = _backend(entry["backend"], f"{where}.backend", changes)
                if entry.get("pathType") is None:
                    entry["pathType"] = "ImplementationSpecific"
                    changes.append(f"{where}.pathType unset -> ImplementationSpecific")
    summary = "; ".join(changes) or "nothing to change"
    return converted, f"apiVersion {old_version} read as {V1}: {summary}"


def _backend(backend: object, where: str, changes: list[str]) -> object:
    if not isinstance(backend, dict) or "serviceName" not in backend:
        return backend  # a resource backend, or a shape model.build reports
    converted = {
        key: value for key, value in backend.items() if key not in ("serviceName", "servicePort")
    }
    port = backend.get("servicePort")
    # servicePort is an IntOrString: a number, or the name of a Service port.
    port_field = "number" if isinstance(port, int) and not isinstance(port, bool) else "name"
    converted["service"] = {"name": backend["serviceName"], "port": {port_field: port}}
    changes.append(f"{where} serviceName/servicePort -> service.name/service.port.{port_field}")
    return converted
