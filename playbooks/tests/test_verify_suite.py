"""The verify suite's parts that need no node (tests/verify/): its parsing (edgestate.py) of
keepalived.conf as the keepalived role writes it, `ip address` and the agent's edge.conf, and
of `ipvsadm -Ln` (the collection's plugins/module_utils/ipvs.py, as conftest.py imports it);
and how it connects (deployment.py): paramiko for ssh inventories."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# edgestate lives with the suite (not a package) and reads keepalived.conf with drill.kaconf;
# the suite reads `ipvsadm -Ln` with the collection's module (.collections/: this checkout).
sys.path[:0] = [str(REPO), str(REPO / ".collections"), str(REPO / "tests" / "verify")]

import deployment  # noqa: E402
import edgestate  # noqa: E402
import pytest  # noqa: E402
from ansible_collections.edgeops.edge.plugins.module_utils import ipvs  # noqa: E402
from testinfra.backend.docker import DockerBackend  # noqa: E402
from testinfra.backend.paramiko import ParamikoBackend  # noqa: E402

# The keepalived role's output for an LVS-DR director (trimmed to what the suite reads).
KEEPALIVED_CONF = """\
# Ansible managed
global_defs {
    router_id dir1
}

vrrp_instance VI_EDGE {
    state BACKUP
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        198.19.0.100/24 dev eth0
        198.19.0.101/24 dev eth0
    }
}

vrrp_instance VI_API {
    interface eth1
    virtual_ipaddress {
        198.19.1.100/24 dev eth1
    }
}

virtual_server 198.19.0.100 80 {
    delay_loop 2
    lb_kind DR
    protocol TCP
    real_server 198.19.0.13 80 {
        weight 1
        inhibit_on_failure
        HTTP_GET {
            url {
                path /healthz
                status_code 200
            }
        }
    }
    real_server 198.19.0.14 80 {
        weight 1
    }
}

virtual_server fwmark 52 {
    lb_kind DR
    real_server 198.19.0.31 {
        weight 1
    }
}
"""

IPVSADM_LN = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.19.0.100:80 wlc
  -> 198.19.0.13:80               Route   1      0          3
  -> 198.19.0.14:80               Route   0      2          0
FWM  52 wlc
  -> 198.19.0.31:0                Route   1      0          0
TCP  [2001:db8::100]:80 wlc
  -> [2001:db8::13]:80            Masq    1      0          0
"""


def test_vrrp_groups_name_their_interface_and_vips():
    groups = edgestate.vrrp_groups(KEEPALIVED_CONF)
    assert groups == {
        "VI_EDGE": edgestate.VrrpGroup("VI_EDGE", "eth0", ("198.19.0.100", "198.19.0.101")),
        "VI_API": edgestate.VrrpGroup("VI_API", "eth1", ("198.19.1.100",)),
    }


def test_virtual_servers_in_ipvsadm_spelling():
    assert edgestate.virtual_servers(KEEPALIVED_CONF) == {
        "TCP 198.19.0.100:80": {"198.19.0.13:80", "198.19.0.14:80"},
        "FWM 52": {"198.19.0.31:0"},
    }


def test_no_virtual_server_without_lvs():
    assert edgestate.virtual_servers(KEEPALIVED_CONF.split("virtual_server")[0]) == {}


def test_ipvs_table_reads_weights_per_service_in_the_spelling_of_virtual_servers():
    """IPv6 real servers too (an older parser of the suite's own skipped them)."""
    table = ipvs.weights(IPVSADM_LN)
    assert table == {
        "TCP 198.19.0.100:80": {"198.19.0.13:80": 1, "198.19.0.14:80": 0},
        "FWM 52": {"198.19.0.31:0": 1},
        "TCP [2001:db8::100]:80": {"[2001:db8::13]:80": 1},
    }
    expected = edgestate.virtual_servers(KEEPALIVED_CONF)
    assert {service: set(table[service]) for service in expected} == expected


def test_empty_ipvs_table():
    assert ipvs.weights(IPVSADM_LN.split("TCP  ")[0]) == {}


def test_holds_matches_the_whole_address():
    shown = (
        "2: eth0    inet 198.19.0.11/24 brd 198.19.0.255 scope global eth0\\\n"
        "2: eth0    inet 198.19.0.100/24 scope global secondary eth0\\\n"
    )
    assert edgestate.holds(shown, "198.19.0.100")
    assert not edgestate.holds(shown, "198.19.0.10")
    assert not edgestate.holds(shown, "198.19.0.1")


def test_served_hosts_skip_the_default_server_regexes_and_loopback_servers():
    edge_conf = """\
server {
    listen 80 default_server;
    server_name _;
}
server {
    listen 80;
    server_name web2;
}
server {
    listen 80;
    server_name ~^[^.]+\\.apps\\.example\\.com$;
}
server {
    listen 80;
    listen 443 ssl;
    server_name web1;
}
server {
    listen 127.0.0.1:10246;
    server_name edgeagent-status;
}
"""
    assert edgestate.served_hosts(edge_conf) == ["web1", "web2"]


def test_route_request_is_the_first_literal_host_and_path_of_an_httproute():
    def route(hostnames, rules=None):
        spec = {"hostnames": hostnames}
        if rules is not None:
            spec["rules"] = rules
        return {"spec": spec}

    exact = [{"matches": [{"path": {"type": "Exact", "value": "/v1"}}]}]
    assert edgestate.route_request(route(["*.lab.example", "gw.lab.example"], exact)) == (
        "gw.lab.example",
        "/v1",
    )
    assert edgestate.route_request(route(["gw.lab.example"])) == ("gw.lab.example", "/")
    regex = [{"matches": [{"path": {"type": "RegularExpression", "value": "/v[0-9]+"}}]}]
    assert edgestate.route_request(route(["gw.lab.example"], regex)) == ("gw.lab.example", "/")
    headers_only = [{"matches": [{"headers": [{"name": "x", "value": "y"}]}]}]
    assert edgestate.route_request(route(["gw.lab.example"], headers_only)) == (
        "gw.lab.example",
        "/",
    )
    # No hostname of its own: the default server answers it, not a host to ask for.
    assert edgestate.route_request(route(["*.lab.example"])) is None
    assert edgestate.route_request({"spec": {}}) is None


def test_sample_spreads_over_the_list_and_keeps_short_ones():
    assert edgestate.sample(["a", "b"], 5) == ["a", "b"]
    assert edgestate.sample([str(n) for n in range(10)], 5) == ["0", "2", "4", "6", "8"]


INVENTORY = """\
all:
  children:
    edge:
      hosts:
        edge-a:
          ansible_host: 198.51.100.50
          ansible_user: deploy
          ansible_port: 2222
          ansible_ssh_private_key_file: /keys/deploy
        edge-b:
          # Templated, as inventory/vm-lab does: the suite connects to what Ansible renders.
          ansible_host: "{{ '198.51.100.' ~ (50 + 1) }}"
        edge-c:
          ansible_connection: community.docker.docker
"""


CACHED = (
    deployment.settings,
    deployment.runner,
    deployment.node_names,
    deployment.rendered_connection_variables,
)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    """The inventory above, read once for the module (rendering runs Ansible)."""
    path = tmp_path_factory.mktemp("inventory") / "hosts.yml"
    path.write_text(INVENTORY)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGE_VERIFY_INVENTORY", str(path))
        for cached in CACHED:
            cached.cache_clear()
        yield path
    for cached in CACHED:
        cached.cache_clear()


def test_ssh_nodes_are_reached_through_paramiko_with_the_inventory_login(inventory):
    # Nothing connects yet: paramiko opens the session at the first command.
    backend = deployment.connect("edge-a").backend
    assert isinstance(backend, ParamikoBackend)
    assert (backend.host.name, backend.host.port, backend.host.user) == (
        "198.51.100.50",
        "2222",
        "deploy",
    )
    assert backend.ssh_identity_file == "/keys/deploy"
    assert backend.sudo  # not root: the checks read root's files


def test_ansibles_default_connection_is_ssh_so_paramiko_too_with_rendered_variables(inventory):
    backend = deployment.connect("edge-b").backend
    assert isinstance(backend, ParamikoBackend)
    assert backend.host.name == "198.51.100.51"
    assert not backend.sudo


def test_docker_nodes_are_reached_with_docker_exec(inventory):
    backend = deployment.connect("edge-c").backend
    assert isinstance(backend, DockerBackend)
    assert backend.name == "edge-c"


def test_the_group_lists_the_nodes(inventory):
    assert deployment.node_names() == ["edge-a", "edge-b", "edge-c"]


def test_no_inventory_is_a_usage_error():
    with pytest.raises(pytest.UsageError, match="EDGE_VERIFY_INVENTORY"):
        deployment.read_settings({})
