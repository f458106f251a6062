"""edge.yml's leave and rejoin (lvs_pool) beside an operator's drain in BGP mode: a node that
playbooks/drain.yml prepended (frr_vip_drain_mode=prepend) still announces its VIPs, but is not
in the path for the leave to take out and the rejoin to bring back: its drain mark stays until
undrain.yml. (Before, the rejoin wrote "announce" over it: the node took full traffic again in
the middle of its maintenance.) The topology is test_frr_vip_drain.py's."""

import test_frr_vip_drain
from test_frr_vip_drain import EDGES, router_nexthops, run_entry_point, run_tasks, wait_for

topology = test_frr_vip_drain.topology


def test_a_prepend_drained_node_stays_drained_across_leave_and_rejoin(topology):
    router, edges = topology["router"].name, topology["edges"]
    mark = edges["edge1"].directory / "vip-drain"
    digest = edges["edge1"].directory / "applied-digest"
    pending = ("-e", "lvs_pool_applied_digest=new")
    result = run_entry_point(edges, "drain", "-e", "frr_vip_drain_mode=prepend")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: router_nexthops(router) == {EDGES["edge2"][1]}, "edge1 prepended")

    for entry_point in ("leave", "rejoin"):
        result = run_tasks(edges, "edge1", "lvs_pool", entry_point, *pending)
        assert result.returncode == 0, result.stdout + result.stderr
        assert mark.read_text() == "prepend\n", (entry_point, result.stdout)
    assert digest.read_text() == "new\n"
    assert router_nexthops(router) == {EDGES["edge2"][1]}

    result = run_entry_point(edges, "undrain")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: router_nexthops(router) == topology["both"], "edge1 back in the ECMP")
