"""Kubernetes manifests from files and directories, as `model.Inputs`.

YAML or JSON, several documents per file, `kind: List` (and `*List`) expanded. A
directory is read recursively, `*.yaml`, `*.yml` and `*.json` in path order. Kinds the
agent does not watch (`edgeagent.resources`; Deployments next to the Ingresses, say) are
skipped. Ingresses of the apiVersions Kubernetes removed are read as v1
(`edgeagent.ingress_versions`), with a warning that says what the conversion changed.

The loader does what `kubectl apply` would before the objects reach the API server:
objects without a namespace land in "default", and a Secret's `stringData` is merged into
`data` (base64). Everything else is left to `model.build`, which validates it.
"""

import base64
import copy
from pathlib import Path

import yaml

from edgeagent import ingress_versions
from edgeagent.model import Inputs, Problem, identity
from edgeagent.resources import BY_KIND, RESOURCES

BY_VERSION_AND_KIND = {(r.api_version, r.kind): r for r in RESOURCES}
SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(ValueError):
    """A file that cannot be read as manifests; the message names the file."""


def files_of(paths: list[str | Path]) -> list[Path]:
    found = []
    for given in map(Path, paths):
        if given.is_dir():
            found.extend(
                sorted(p for p in given.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
            )
        elif given.is_file():
            found.append(given)
        else:
            raise ManifestError(f"{given}: no such file or directory")
    return found


def documents(path: Path) -> list[dict]:
    """The objects of one file, List kinds expanded, empty documents dropped."""
    try:
        loaded = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ManifestError(f"{path}: {error}") from None
    objects = []
    for document in loaded:
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ManifestError(f"{path}: a document is not a mapping")
        kind = document.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and "items" in document:
            items = document["items"] or []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ManifestError(f"{path}: {kind}.items must be a list of mappings")
            objects.extend(items)
        else:
            objects.append(document)
    return objects


def load(paths: list[str | Path]) -> tuple[Inputs, list[Problem]]:
    """The objects the agent reads, and a Problem for each of those kinds written in an
    apiVersion it does not read (a v1beta1 IngressClass, say), or read converted (a
    "warning": an Ingress of a removed apiVersion)."""
    inputs, problems = Inputs(), []
    for path in files_of(paths):
        for obj in documents(path):
            kind, version = obj.get("kind"), obj.get("apiVersion")
            if kind == "Ingress" and version in ingress_versions.OLD_VERSIONS:
                obj, conversion = ingress_versions.to_v1(obj)
                namespace, name = identity(_as_applied(obj))
                problems.append(Problem(kind, namespace, name, f"{path}: {conversion}", "warning"))
                version = obj["apiVersion"]
            resource = BY_VERSION_AND_KIND.get((version, kind))
            if resource is not None:
                getattr(inputs, resource.name).append(_as_applied(obj))
            elif isinstance(kind, str) and kind in BY_KIND:
                served = BY_KIND[kind].api_version
                namespace, name = identity(_as_applied(obj))
                problems.append(
                    Problem(
                        kind,
                        namespace,
                        name,
                        f"{path}: apiVersion {version!r} is not read; use {served}",
                        "unsupported",
                    )
                )
    return inputs, problems


def _as_applied(obj: dict) -> dict:
    """The object as the API server would store it from `kubectl apply`."""
    obj = copy.deepcopy(obj)
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and BY_KIND[obj["kind"]].namespaced:
        metadata.setdefault("namespace", "default")
    string_data = obj.pop("stringData", None) if obj.get("kind") == "Secret" else None
    if isinstance(string_data, dict):
        data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
        for key, value in string_data.items():
            if isinstance(value, str):
                data[key] = base64.b64encode(value.encode()).decode()
        obj["data"] = data
    return obj
