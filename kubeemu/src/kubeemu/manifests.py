"""Reading YAML manifests to preload: files, or directories of *.yaml/*.yml/*.json files.

Multi-document files and `kind: List` documents are both accepted, as kubectl accepts them.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import yaml


def _files(path: pathlib.Path) -> Iterator[pathlib.Path]:
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.suffix in (".yaml", ".yml", ".json"):
                yield child
    else:
        yield path


def load(paths: list[str]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in paths:
        for file in _files(pathlib.Path(path)):
            for document in yaml.safe_load_all(file.read_text()):
                if not document:
                    continue
                if not isinstance(document, dict):
                    raise ValueError(f"{file}: a document is not a mapping")
                if document.get("kind") == "List":
                    objects.extend(document.get("items") or [])
                else:
                    objects.append(document)
    return objects
