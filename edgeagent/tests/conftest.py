"""Shared fixtures: a real nginx and real HTTP backends on loopback.

Kept general so every suite can use them; the machinery lives in support_nginx.py and
support_http.py (importable from tests as plain modules).
"""

import pytest
from agentlab import Nginx
from support_http import Backends
from support_nginx import NginxRunner


@pytest.fixture
def nginx_runner():
    """Start nginx with `nginx_runner.start(site)`; every instance is stopped afterwards."""
    runner = NginxRunner()
    yield runner
    runner.stop_all()


@pytest.fixture
def http_backends():
    """Start echo backends with `http_backends.start(name)`; all stop afterwards."""
    backends = Backends()
    yield backends
    backends.stop_all()


@pytest.fixture
def nginx(tmp_path):
    """A real nginx of its own with the agent's layout (agentlab.Nginx), stopped after."""
    started = Nginx(tmp_path / "nginx").start()
    yield started
    started.stop()
