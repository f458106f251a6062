"""edgeagent: Kubernetes Ingress to nginx on edge nodes."""

import importlib.metadata
import pathlib
import tomllib


def _version() -> str:
    """pyproject.toml's version: from the installed package's metadata, or, when the
    sources run uninstalled (a checkout on PYTHONPATH), from pyproject.toml itself."""
    try:
        return importlib.metadata.version(__name__)
    except importlib.metadata.PackageNotFoundError:
        pyproject = pathlib.Path(__file__).resolve().parents[2] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


__version__ = _version()
