"""A synthetic drill in BGP mode shared by the spread and report tests: two edges behind a
router's ECMP, edge1 lost at FAULT and back at 105.5."""

from drill.analysis import Request, Window
from drill.tests.synthetic import FAULT, PERIOD, RESTORE, SETTLED

WINDOW = Window("power-off", FAULT, RESTORE, SETTLED)
# The router drops edge1 this long after the fault (BFD), and sends it flows again from here.
DETECTED, BACK = FAULT + 0.3, 105.5


def hashed(i):
    """The edge new connection i hashes to while both are announced."""
    return "edge1" if i % 2 == 0 else "edge2"


def bgp_requests(survivor_broken_at=()):
    """New connections alternate between the edges; those hashed to edge1 time out from the
    fault until the router drops it. Keep-alive connection 0 is on edge1 (broken by the fault,
    reopened on edge2), connection 1 on edge2, broken at each time in survivor_broken_at."""
    requests = []
    for i in range(int((110.0 - 100.0) / PERIOD)):
        t = round(100.0 + i * PERIOD, 6)
        if FAULT <= t < DETECTED and hashed(i) == "edge1":
            requests.append(Request("new", t, 500.0, False, None, "timeout"))
        elif DETECTED <= t < BACK:
            requests.append(Request("new", t, 2.0, True, "edge2"))
        else:
            requests.append(Request("new", t, 2.0, True, hashed(i)))
    for i in range(100):
        t = round(100.0 + i * 0.1 + 0.005, 6)
        broken = t == FAULT + 0.005
        requests.append(
            Request(
                "long",
                t,
                1.0,
                not broken,
                None if broken else "edge1" if t < FAULT else "edge2",
                "timeout" if broken else None,
                0,
                broken,
            )
        )
        broken = t in survivor_broken_at
        requests.append(
            Request(
                "long",
                t,
                1.0,
                not broken,
                None if broken else "edge2",
                "reset" if broken else None,
                1,
                broken,
            )
        )
    return requests
