from collections.abc import Iterator

import kubernetes
import pytest
from kubeemu.testing import EmulatorThread


@pytest.fixture
def api() -> Iterator[EmulatorThread]:
    with EmulatorThread(history_limit=50, bookmark_interval=0.2) as emulator:
        yield emulator


@pytest.fixture
def networking(api: EmulatorThread) -> kubernetes.client.NetworkingV1Api:
    return kubernetes.client.NetworkingV1Api(api.api_client())


@pytest.fixture
def core(api: EmulatorThread) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api.api_client())
