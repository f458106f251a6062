"""edgeagent: Kubernetes Ingress to nginx on edge nodes."""

import importlib.metadata
import pathlib
import tomllib


def _version() -> str:
    """pyproject.toml's version (the project's, tools/release.py keeps it galaxy.yml's): read
    from the checkout when these sources run from one (PYTHONPATH, an editable install),
    since an installed edgeagent of another checkout may shadow its metadata; from the
    installed package's metadata otherwise (a wheel on a node)."""
    pyproject = pathlib.Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text())["project"]
        if project["name"] == __name__:
            return project["version"]
    return importlib.metadata.version(__name__)


__version__ = _version()
