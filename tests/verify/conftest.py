"""Fixtures and hooks of the verify suite; what they stand on is in deployment.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import testinfra

# deployment and edgestate (next to this file); edgestate reads keepalived.conf with the
# drill's parser (the repository's drill package), the suite `ipvsadm -Ln` with the
# collection's plugins/module_utils/ipvs.py, imported by its collection name from the
# directory that holds ansible_collections/edgeops/edge: .collections/ in a checkout, the
# collections path where the collection is installed (playbooks/verify.yml runs it there).
REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".collections" if (REPO / ".collections").is_dir() else REPO.parents[2]
sys.path[:0] = [str(REPO), str(COLLECTIONS), str(Path(__file__).parent)]

import labmanifest  # noqa: E402
from deployment import UNITS, Report, Settings, connect, node_names, settings  # noqa: E402

REPORT = Report(settings())


@pytest.fixture(name="settings", scope="session")
def settings_fixture() -> Settings:
    return settings()


@pytest.fixture(scope="session")
def nodes() -> dict[str, testinfra.host.Host]:
    return {name: connect(name) for name in node_names()}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "node" in metafunc.fixturenames:
        metafunc.parametrize("node", node_names())
    if "unit" in metafunc.fixturenames:
        metafunc.parametrize("unit", UNITS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The Gateway API checks ask the API server: without a kubeconfig there is nobody to
    ask, so they are left out (deselected, listed as such), not failed. The checks of the
    lab's annotated Ingresses are left out where the API does not hold them."""
    kubeconfig = settings().kubeconfig
    left_out = [item for item in items if item.get_closest_marker("gateway_api") and not kubeconfig]
    lab = [item for item in items if item.get_closest_marker("lab_annotations")]
    if lab and not labmanifest.applied(kubeconfig):
        left_out += lab
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gateway_api: needs EDGE_VERIFY_KUBECONFIG")
    config.addinivalue_line(
        "markers", "lab_annotations: needs lab/manifests/annotated.yaml applied to the API"
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    REPORT.add(report)


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORT.checks:
        terminalreporter.write_line(f"verify report: {REPORT.write()}")
