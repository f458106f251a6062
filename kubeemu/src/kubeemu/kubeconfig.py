"""A kubeconfig for clients of the emulator: one cluster, one token user, one context."""

from __future__ import annotations

import os
import pathlib

import yaml


def write(path: str | os.PathLike[str], server: str, token: str | None) -> pathlib.Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubeemu", "cluster": {"server": server}}],
        "users": [{"name": "kubeemu", "user": {"token": token or "kubeemu"}}],
        "contexts": [
            {
                "name": "kubeemu",
                "context": {"cluster": "kubeemu", "user": "kubeemu", "namespace": "default"},
            }
        ],
        "current-context": "kubeemu",
    }
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    target.chmod(0o600)
    return target
