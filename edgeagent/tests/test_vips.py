"""The VIP holder gauge (vips.py): the node's addresses as the kernel has them, and a VIP
that comes and goes counted, in a network namespace of the test's own."""

import ipaddress
import json
import subprocess
import textwrap

from agentlab import VIP, Edge, eventually, in_network_namespace

from edgeagent import vips

# Taken, lost, taken, lost: what keepalived does to the VIP on a flapping node.
FLAP = textwrap.dedent(
    """
    import json
    import subprocess
    from edgeagent import metrics, vips

    VIP = "192.0.2.77"
    agent = metrics.Metrics()
    holder = vips.VipHolder([VIP, "edge.example.com"], agent)

    def sampled(name):
        return agent.registry.get_sample_value(name, {"address": VIP})

    held = []
    for step in ("add", "del", "add", "del"):
        holder.sample()
        held.append(sampled("edgeagent_vip_holder"))
        subprocess.run(["ip", "addr", step, VIP + "/32", "dev", "lo"], check=True)
    holder.sample()
    held.append(sampled("edgeagent_vip_holder"))
    print(json.dumps([held, sampled("edgeagent_vip_holder_changes_total")]))
    """
)


def test_local_addresses_are_what_ip_addr_shows():
    shown = json.loads(
        subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, check=True).stdout
    )
    expected = {
        ipaddress.ip_address(info["local"])
        for interface in shown
        for info in interface.get("addr_info", [])
    }
    assert vips.local_addresses() == expected


def test_a_vip_that_comes_and_goes_is_counted_as_changes():
    # A namespace of its own: the VIP is added to the test's loopback, not the machine's.
    assert in_network_namespace(FLAP) == [[0, 1, 0, 1, 0], 4]


def test_the_agent_exports_which_of_its_addresses_this_node_holds(tmp_path):
    # 127.0.0.1 stands for a VIP this node holds; the lab's VIP is on no interface here.
    with Edge(tmp_path, **{"publish-status-address": f"127.0.0.1,{VIP}"}) as edge:
        edge.agent.wait_ready()

        def held():
            samples = edge.agent.metrics()
            return {
                dict(labels)["address"]: value
                for (name, labels), value in samples.items()
                if name == "edgeagent_vip_holder"
            }

        eventually(lambda: held() == {"127.0.0.1": 1.0, VIP: 0.0})
