"""The VIP holder gauge (vips.py): the node's addresses as the kernel has them but those on
loopback, and a VIP that comes and goes counted, in a network namespace of the test's own."""

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

    # On lo the VIP is on every node (keepalived_vip_on_lo): held only on another interface.
    veth = ["ip", "link", "add", "vrrp0", "type", "veth", "peer", "name", "peer0"]
    subprocess.run(veth, check=True)
    subprocess.run(["ip", "link", "set", "vrrp0", "up"], check=True)
    subprocess.run(["ip", "addr", "add", VIP + "/32", "dev", "lo"], check=True)
    held = []
    for step in ("add", "del", "add", "del"):
        holder.sample()
        held.append(sampled("edgeagent_vip_holder"))
        subprocess.run(["ip", "addr", step, VIP + "/32", "dev", "vrrp0"], check=True)
    holder.sample()
    held.append(sampled("edgeagent_vip_holder"))
    print(json.dumps([held, sampled("edgeagent_vip_holder_changes_total")]))
    """
)


# The BGP mode (docs/bgp.md): announced while a main-table host route sends the VIP to lo.
ANNOUNCED = textwrap.dedent(
    """
    import json
    import subprocess
    from edgeagent import vips

    VIP, VIP6 = "198.18.20.77", "2001:db8:20::77"

    def ip(*argv):
        subprocess.run(["ip", *argv], check=True)

    def held():
        return sorted(str(address) for address in vips.held_addresses())

    ip("link", "set", "lo", "up")
    # What every BGP node keeps, announcing or not, and what an LVS-DR real server has.
    ip("route", "add", "local", VIP + "/32", "dev", "lo", "table", "local", "proto", "202")
    ip("addr", "add", "198.18.20.78/32", "dev", "lo")
    steps = [held()]
    ip("route", "add", VIP + "/32", "dev", "lo", "proto", "202", "metric", "0")
    ip("-6", "route", "add", VIP6 + "/128", "dev", "lo", "proto", "202", "metric", "1")
    # A route out of lo that is no host route is no VIP.
    ip("route", "add", "198.18.21.0/24", "dev", "lo", "proto", "202")
    steps.append(held())
    ip("route", "flush", "table", "main", "proto", "202")
    ip("-6", "route", "flush", "table", "main", "proto", "202")
    steps.append(held())
    print(json.dumps(steps))
    """
)


def _shown_addresses() -> dict[str, set]:
    """`ip addr`'s addresses by interface name."""
    shown = json.loads(
        subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, check=True).stdout
    )
    return {
        interface["ifname"]: {
            ipaddress.ip_address(info["local"]) for info in interface.get("addr_info", [])
        }
        for interface in shown
    }


def test_held_addresses_are_what_ip_addr_shows_but_loopback():
    shown = _shown_addresses()
    expected = set().union(*(found for name, found in shown.items() if name != "lo"))
    assert vips.held_addresses() == expected
    assert ipaddress.ip_address("127.0.0.1") not in expected


def test_the_bgp_modes_announced_vips_are_held_and_withdrawn_ones_not():
    assert in_network_namespace(ANNOUNCED) == [
        [],
        ["198.18.20.77", "2001:db8:20::77"],
        [],
    ]


def test_a_vip_that_comes_and_goes_is_counted_as_changes():
    # A namespace of its own: the VIP is added to the test's loopback, not the machine's.
    assert in_network_namespace(FLAP) == [[0, 1, 0, 1, 0], 4]


def test_the_agent_exports_which_of_its_addresses_this_node_holds(tmp_path):
    # An address of this machine's stands for a VIP this node holds; the lab's VIP is on no
    # interface here, and 127.0.0.1 is on loopback, where every node has its VIPs.
    mine = sorted(
        str(address)
        for name, found in _shown_addresses().items()
        if name != "lo"
        for address in found
        if address.version == 4
    )[0]
    with Edge(tmp_path, **{"publish-status-address": f"{mine},127.0.0.1,{VIP}"}) as edge:
        edge.agent.wait_ready()

        def held():
            samples = edge.agent.metrics()
            return {
                dict(labels)["address"]: value
                for (name, labels), value in samples.items()
                if name == "edgeagent_vip_holder"
            }

        eventually(lambda: held() == {mine: 1.0, "127.0.0.1": 0.0, VIP: 0.0})
