"""The frr role's VIP announcement (edge_vip_mode: bgp): frr.conf with upstream peers and VIPs,
the health gate's script and unit, rendered by Ansible, equal their golden copies and pass
their checkers (`vtysh --dryrun`, `sh -n`, `systemd-analyze verify`); each kind of bad VIP
setting stops tasks/validate.yml with a message naming the host and the variable.
(test_frr_vip_ecmp.py runs them in real FRR, behind a router, with nginx.)"""

import os
import subprocess
from pathlib import Path

import pytest
import test_frr_role
import yaml
from role_template import render_role_template
from test_frr_role import run_validation

GOLDEN = Path(__file__).with_name("golden") / "frr-vips"
UPDATE = os.environ.get("EDGEAGENT_UPDATE_GOLDEN") == "1"

# An edge node peering with the cluster (as test_frr_role's) and with a pair of ToR routers.
SETTINGS = {
    "frr_asn": 64600,
    "frr_router_id": "198.51.100.11",
    "frr_peers": [{"address": "198.51.100.21", "asn": 64512}],
    "frr_import_pod_cidrs": [{"cidr": "198.18.0.0/16", "le": 26}],
    "frr_upstream_peers": [
        {"address": "198.51.100.1", "asn": 64500, "password": "s3cret", "bfd": True},
        {"address": "198.51.100.2", "asn": 64500, "description": "tor-b"},
    ],
    "frr_vips": ["198.51.100.100", "198.51.100.101"],
}

FILES = {
    "etc/frr/frr.conf.j2": "vtysh --dryrun --inputfile %s",
    "etc/frr/daemons.j2": "sh -n %s",
    "usr/local/libexec/frr/edge-vip-announce.j2": "sh -n %s",
    "etc/systemd/system/edge-vip-announce.service.j2": None,
}


def render(tmp_path: Path, template: str, validate: str | None) -> Path:
    (tmp_path / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"edge": {"hosts": {"edge1": {}}}}}})
    )
    return render_role_template(
        "frr",
        template,
        tmp_path / Path(template).stem,
        SETTINGS,
        inventory=str(tmp_path / "hosts.yml"),
        host="edge1",
        validate=validate,
    )


@pytest.mark.parametrize(("template", "validate"), FILES.items(), ids=list(FILES))
def test_rendered_file_is_valid_and_equals_its_golden_copy(tmp_path, template, validate):
    rendered = render(tmp_path, template, validate).read_text()
    golden = GOLDEN / Path(template).stem
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    """As the role's `validate:` runs it once the script is in place: here the rendered script
    stands at the ExecStart path's place (verify needs it executable), the rest unchanged."""
    script = render(tmp_path, "usr/local/libexec/frr/edge-vip-announce.j2", "sh -n %s")
    script.chmod(0o755)
    unit = render(tmp_path, "etc/systemd/system/edge-vip-announce.service.j2", None)
    installed = "/usr/local/libexec/frr/edge-vip-announce"
    assert f"ExecStart={installed}\n" in unit.read_text()
    unit.write_text(unit.read_text().replace(installed, str(script)))
    result = subprocess.run(
        ["systemd-analyze", "verify", f"{unit}:edge-vip-announce.service"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_good_settings_pass(tmp_path):
    result = run_validation(tmp_path, SETTINGS)
    assert result.returncode == 0, result.stdout + result.stderr


def broken(change) -> dict:
    return test_frr_role.broken(change, SETTINGS)


CASES = [
    pytest.param(
        broken(lambda s: s.update(frr_vips=[])),
        "frr_vips must list distinct IPv4 addresses, and is announced to frr_upstream_peers",
        id="upstream-without-vips",
    ),
    pytest.param(
        broken(lambda s: s.update(frr_upstream_peers=[])),
        "give both or neither",
        id="vips-without-upstream",
    ),
    pytest.param(
        broken(lambda s: s["frr_vips"].append("198.51.100.300")),
        "frr_vips must list distinct IPv4 addresses",
        id="bad-vip",
    ),
    pytest.param(
        broken(lambda s: s["frr_vips"].append("198.51.100.100")),
        "frr_vips must list distinct IPv4 addresses",
        id="vip-twice",
    ),
    pytest.param(
        broken(lambda s: s["frr_upstream_peers"].append({"address": "198.51.100.21", "asn": 1})),
        "an address is in both frr_peers and frr_upstream_peers (198.51.100.21)",
        id="upstream-is-cluster-peer",
    ),
    pytest.param(
        broken(lambda s: s["frr_upstream_peers"][1].pop("asn")),
        "every entry of frr_upstream_peers needs",
        id="upstream-without-asn",
    ),
    pytest.param(
        broken(lambda s: s["frr_upstream_peers"].append({"address": "198.51.100.1", "asn": 1})),
        "frr_upstream_peers lists an address more than once",
        id="upstream-twice",
    ),
    pytest.param(
        broken(lambda s: s.update(frr_vip_required_checks=[])),
        "at least one URL in frr_vip_required_checks",
        id="no-required-check",
    ),
    pytest.param(
        broken(lambda s: s.update(frr_vip_preferred_checks=["127.0.0.1:10254/readyz"])),
        "at least one URL in frr_vip_required_checks",
        id="check-not-a-url",
    ),
    pytest.param(
        broken(lambda s: s.update(frr_vip_route_protocol=201)),
        "or the pod routes' (201) (got 201)",
        id="pod-route-protocol",
    ),
]


@pytest.mark.parametrize(("settings", "message"), CASES)
def test_bad_settings_stop_with_a_message_naming_host_and_variable(tmp_path, settings, message):
    result = run_validation(tmp_path, settings)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert "localhost: " in output and message in output, output
