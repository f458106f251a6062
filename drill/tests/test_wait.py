from drill import wait

LOG = """\
[INIT 2026-11-25T16:07:37.000000]
2: eth0    inet 198.51.100.100/32 scope global eth0
[2026-11-25T16:07:38.250000] Deleted 2: eth0    inet 198.51.100.100/32 scope global eth0
"""


def test_wait_returns_at_once_when_the_state_is_reached(tmp_path):
    log = tmp_path / "edge1.log"
    log.write_text(LOG)
    assert wait.main([str(log), "--vip", "198.51.100.100", "--released"]) == 0


def test_wait_times_out(tmp_path, capsys):
    log = tmp_path / "edge1.log"
    log.write_text(LOG)
    assert wait.main([str(log), "--vip", "198.51.100.100", "--holds", "--timeout", "0.2"]) == 1
    assert "edge1: timed out" in capsys.readouterr().err


def test_wait_for_the_router_to_drop_a_node_and_take_it_back(tmp_path):
    log = tmp_path / "router.log"
    log.write_text('{"t": 1.0, "via": ["198.51.100.11", "198.51.100.12"]}\n')
    assert wait.main([str(log), "--via", "198.51.100.11", "--holds"]) == 0
    assert wait.main([str(log), "--via", "198.51.100.11", "--released", "--timeout", "0.2"]) == 1
    log.write_text(log.read_text() + '{"t": 2.0, "via": ["198.51.100.12"]}\n')
    assert wait.main([str(log), "--via", "198.51.100.11", "--released"]) == 0
