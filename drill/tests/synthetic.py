"""A synthetic drill shared by the analysis and report tests."""

from drill.analysis import Request

FAULT, RESTORE, SETTLED = 102.0, 105.0, 108.0
PERIOD = 0.02


def serving(t):
    """Who answers a probe started at t in the synthetic drill: edge1 until the fault,
    nobody for 300 ms, edge2 until failback at 105.5, edge1 again after."""
    if t < FAULT or t >= 105.5:
        return "edge1"
    if t < FAULT + 0.3:
        return None
    return "edge2"


def synthetic_requests():
    requests = []
    for i in range(int((110.0 - 100.0) / PERIOD)):
        t = round(100.0 + i * PERIOD, 6)
        node = serving(t)
        requests.append(
            Request("new", t, 2.0, True, node)
            if node
            else Request("new", t, 500.0, False, None, "timeout")
        )
    for i in range(100):
        t = round(100.0 + i * 0.1 + 0.005, 6)
        node = serving(t)
        broken_now = t in (102.005, 105.505)
        requests.append(
            Request(
                "long",
                t,
                1.0,
                not broken_now and node is not None,
                None if broken_now else node,
                "reset" if broken_now else None,
                0,
                broken_now,
            )
        )
    return requests
