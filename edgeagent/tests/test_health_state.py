"""HealthState's liveness: which threads count as dead."""

import threading

from edgeagent.health import HealthState


def test_a_thread_not_started_yet_is_not_dead():
    """The health server answers before daemon.run has started every thread: a slow start
    (a busy node) must not read as a dead thread, a 503 on /healthz."""
    waiting = threading.Thread(target=lambda: None, name="informer-services")
    health = HealthState(dict, lambda: [waiting])
    assert health.dead_threads() == []
    assert health.alive


def test_a_thread_that_ended_is_dead():
    ended = threading.Thread(target=lambda: None, name="controller")
    ended.start()
    ended.join()
    health = HealthState(dict, lambda: [ended])
    assert health.dead_threads() == ["controller"]
    assert not health.alive
