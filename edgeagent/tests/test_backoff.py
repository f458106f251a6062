"""The backoff shared by the informers and the controller's retries."""

from edgeagent.backoff import Backoff


def test_delays_double_up_to_the_maximum_and_restart_after_a_success():
    backoff = Backoff(initial=5.0, maximum=30.0)
    assert [backoff.failed() for _ in range(5)] == [5.0, 10.0, 20.0, 30.0, 30.0]
    backoff.succeeded()
    assert backoff.failed() == 5.0


def test_jitter_draws_between_half_and_all_of_the_delay():
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=True)
    for expected in (1.0, 2.0, 4.0, 8.0, 8.0):
        assert expected / 2 <= backoff.failed() <= expected
