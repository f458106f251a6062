from datetime import UTC, datetime

import pytest

from drill import holders
from drill.holders import Step

VIP = "198.51.100.100"
T0 = datetime(2026, 11, 25, 16, 7, 37, tzinfo=UTC).timestamp()

EDGE1_LOG = """\
[INIT 2026-11-25T16:07:37.000000]
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 198.51.100.11/24 brd 198.51.100.255 scope global eth0\\       valid_lft forever
2: eth0    inet 198.51.100.100/32 scope global eth0\\       valid_lft forever
[2026-11-25T16:07:38.250000] Deleted 2: eth0    inet 198.51.100.100/32 scope global eth0\\  x
[2026-11-25T16:07:38.300000] 2: eth0    inet 198.51.100.110/32 scope global eth0\\  x
[2026-11-25T16:07:40.000000] 2: eth0    inet 198.51.100.100/32 scope global eth0\\  x
"""

EDGE2_LOG = """\
[INIT 2026-11-25T16:07:37.000100]
2: eth0    inet 198.51.100.12/24 brd 198.51.100.255 scope global eth0\\       valid_lft forever
[2026-11-25T16:07:38.100000] 2: eth0    inet 198.51.100.100/32 scope global eth0\\  x
[2026-11-25T16:07:40.040000] Deleted 2: eth0    inet 198.51.100.100/32 scope global eth0\\  x
"""


def test_parse_log_reads_the_initial_dump_and_the_vip_events_only():
    assert holders.parse_log(EDGE1_LOG, VIP) == [
        (T0, True),
        (pytest.approx(T0 + 1.25), False),
        (pytest.approx(T0 + 3.0), True),
    ]


def test_parse_log_of_a_node_without_the_vip_at_start():
    assert holders.parse_log(EDGE2_LOG, VIP) == [
        (pytest.approx(T0 + 0.0001), False),
        (pytest.approx(T0 + 1.1), True),
        (pytest.approx(T0 + 3.04), False),
    ]


def test_parse_log_does_not_mistake_a_longer_address_for_the_vip():
    log = "[INIT 2026-11-25T16:07:37.000000]\n2: eth0    inet 198.51.100.1001/32 scope global\n"
    assert holders.parse_log(log, "198.51.100.100") == [(T0, False)]


def test_parse_log_without_a_start_line_is_an_error():
    with pytest.raises(holders.LogError, match="did not start"):
        holders.parse_log("", VIP)
    with pytest.raises(holders.LogError, match="untimestamped"):
        holders.parse_log("2: eth0    inet 198.51.100.100/32\n", VIP)


def steps_of_both_logs():
    return holders.merge(
        {"edge1": holders.parse_log(EDGE1_LOG, VIP), "edge2": holders.parse_log(EDGE2_LOG, VIP)}
    )


def test_merge_gives_holder_sets_over_time():
    steps = steps_of_both_logs()
    assert [sorted(s.holders) for s in steps] == [
        ["edge1"],
        ["edge1", "edge2"],
        ["edge2"],
        ["edge1", "edge2"],
        ["edge1"],
    ]
    assert holders.holders_at(steps, T0 + 1.2) == {"edge1", "edge2"}
    assert holders.holders_at(steps, T0 - 5) == frozenset()


def test_merge_keeps_the_outcome_of_simultaneous_events():
    steps = holders.merge({"a": [(1.0, True), (2.0, False)], "b": [(1.0, False), (2.0, True)]})
    assert steps == [Step(1.0, frozenset({"a"})), Step(2.0, frozenset({"b"}))]


def test_split_brain_intervals_are_clipped_to_the_window():
    steps = steps_of_both_logs()
    assert holders.split_brain(steps, T0, T0 + 10) == [
        (pytest.approx(T0 + 1.1), pytest.approx(T0 + 1.25)),
        (pytest.approx(T0 + 3.0), pytest.approx(T0 + 3.04)),
    ]
    assert holders.split_brain(steps, T0 + 3.02, T0 + 10) == [
        (pytest.approx(T0 + 3.02), pytest.approx(T0 + 3.04))
    ]
    assert holders.split_brain(steps, T0 + 1.3, T0 + 2.9) == []


def test_vacant_counts_the_unknown_start_and_gaps():
    steps = holders.merge({"a": [(1.0, True), (2.0, False), (2.5, True)]})
    assert holders.vacant(steps, 0.0, 3.0) == [(0.0, 1.0), (2.0, 2.5)]
    assert holders.vacant([], 0.0, 3.0) == [(0.0, 3.0)]


def test_newest_holder_is_the_last_to_take_the_vip():
    steps = steps_of_both_logs()
    assert holders.newest_holder_at(steps, T0 + 0.5) == "edge1"
    assert holders.newest_holder_at(steps, T0 + 1.2) == "edge2"
    assert holders.newest_holder_at(steps, T0 + 3.02) == "edge1"
    assert holders.newest_holder_at(steps, T0 - 1) is None


def test_parse_log_can_count_the_vip_on_one_interface_only():
    log = (
        "[INIT 2026-11-25T16:07:37.000000]\n"
        "1: lo    inet 198.51.100.100/32 scope global lo\\       valid_lft forever\n"
        "[2026-11-25T16:07:38.000000] 2: eth0    inet 198.51.100.100/24 scope global eth0\n"
        "[2026-11-25T16:07:39.000000] Deleted 2: eth0    inet 198.51.100.100/24 scope global\n"
    )
    assert holders.parse_log(log, VIP, "eth0") == [
        (T0, False),
        (pytest.approx(T0 + 1), True),
        (pytest.approx(T0 + 2), False),
    ]
    assert holders.parse_log(log, VIP)[0] == (T0, True)


def test_a_node_that_lost_power_holds_nothing_until_its_watcher_starts_again():
    # Held the VIP at start; power cut at +2 s (its log's tail never reached the disk); booted,
    # its watcher started again at +30 s without the VIP, took it back at +40 s.
    log = EDGE1_LOG.split("[2026-11-25T16:07:38.250000]")[0] + (
        "[INIT 2026-11-25T16:08:07.000000]\n"
        "2: eth0    inet 198.51.100.11/24 brd 198.51.100.255 scope global eth0\\  x\n"
        "[2026-11-25T16:08:17.000000] 2: eth0    inet 198.51.100.100/32 scope global eth0\\  x\n"
    )
    transitions = holders.powered_off(holders.parse_log(log, VIP), T0 + 2)
    assert transitions == [(T0, True), (T0 + 2, False), (T0 + 40, True)]
