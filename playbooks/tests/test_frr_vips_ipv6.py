"""IPv6 VIPs in BGP mode (edge_vip_mode: bgp): frr.conf and the health gate rendered by Ansible
for a dual-stack node (an IPv4 and an IPv6 VIP, a ToR reached over both families) equal their
golden copies and pass their checkers; playbooks/validate.yml and the role's checks accept IPv6
VIPs and routers, and the role's refuse what cannot work, with a message naming the host and the
variable.
(test_frr_vip_ipv6.py runs an IPv6 VIP in real FRR, behind a router, with nginx and BFD.)"""

import copy
import os
from pathlib import Path

import pytest
import test_frr_role
import yaml
from role_template import render_role_template
from test_frr_role import run_validation
from test_validate_vip_mode import BGP
from validation import run_validation as run_site_validation

GOLDEN = Path(__file__).with_name("golden") / "frr-vips-dual-stack"
UPDATE = os.environ.get("EDGEAGENT_UPDATE_GOLDEN") == "1"

SETTINGS = {
    "frr_asn": 64600,
    "frr_router_id": "198.51.100.11",
    "frr_upstream_peers": [
        {"address": "198.51.100.1", "asn": 64500, "bfd": True},
        {"address": "2001:db8:182:1::1", "asn": 64500, "bfd": True, "description": "tor-a-v6"},
    ],
    "frr_vips": ["198.51.100.100", "2001:db8:183::100"],
}

FILES = {
    "etc/frr/frr.conf.j2": "vtysh --dryrun --inputfile %s",
    "usr/local/libexec/frr/edge-vip-announce.j2": "sh -n %s",
}


@pytest.mark.parametrize(("template", "validate"), FILES.items(), ids=list(FILES))
def test_rendered_file_is_valid_and_equals_its_golden_copy(tmp_path, template, validate):
    (tmp_path / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"edge": {"hosts": {"edge1": {}}}}}})
    )
    rendered = render_role_template(
        "frr",
        template,
        tmp_path / Path(template).stem,
        SETTINGS,
        inventory=str(tmp_path / "hosts.yml"),
        host="edge1",
        validate=validate,
    ).read_text()
    golden = GOLDEN / Path(template).stem
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def test_ipv6_vips_and_routers_pass(tmp_path):
    result = run_validation(tmp_path, SETTINGS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_playbooks_validate_accepts_a_dual_stack_bgp_group(tmp_path):
    inventory = copy.deepcopy(BGP)
    inventory["group_vars"]["frr_upstream_peers"] = SETTINGS["frr_upstream_peers"]
    inventory["group_vars"]["frr_vips"] = SETTINGS["frr_vips"]
    result = run_site_validation(tmp_path, inventory)
    assert result.returncode == 0, result.stdout + result.stderr


def broken(change) -> dict:
    return test_frr_role.broken(change, SETTINGS)


CASES = [
    pytest.param(
        broken(lambda s: s["frr_upstream_peers"].pop(1)),
        "frr_vips has 1 IPv4 and 1 IPv6 VIPs, frr_upstream_peers 1 IPv4 and 0 IPv6 routers",
        id="ipv6-vip-without-ipv6-router",
    ),
    pytest.param(
        broken(lambda s: s["frr_upstream_peers"].pop(0)),
        "every family of VIPs needs an upstream peer of that family",
        id="ipv4-vip-without-ipv4-router",
    ),
    pytest.param(
        broken(lambda s: s.update(frr_peers=[{"address": "2001:db8:182:9::1", "asn": 64512}])),
        "every entry of frr_peers needs `address` (IPv4) and `asn`",
        id="ipv6-cluster-peer",
    ),
    pytest.param(
        broken(lambda s: s["frr_vips"].append("2001:db8:183::100")),
        "IPv6 addresses (no prefix length) are VIPs too",
        id="ipv6-vip-twice",
    ),
    pytest.param(
        broken(lambda s: s["frr_vips"].append("2001:db8:183::/64")),
        "IPv6 addresses (no prefix length) are VIPs too",
        id="ipv6-network-as-vip",
    ),
]


@pytest.mark.parametrize(("settings", "message"), CASES)
def test_bad_settings_stop_with_a_message_naming_host_and_variable(tmp_path, settings, message):
    result = run_validation(tmp_path, settings)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert "localhost: " in output and message in output, output
