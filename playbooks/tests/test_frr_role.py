"""The frr role's files and checks: frr.conf and daemons rendered by Ansible with every option
(BFD, a vault password, an export prefix, ge/le bounds) equal their golden copies and pass
`vtysh --dryrun` as the role's `validate:` runs it; each kind of bad setting stops
tasks/validate.yml with a message that names the host and the variable.
(test_frr_bgp.py runs the rendered frr.conf in real FRR.)"""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from role_template import REPO, render_role_template

GOLDEN = Path(__file__).with_name("golden") / "frr"
UPDATE = os.environ.get("EDGEAGENT_UPDATE_GOLDEN") == "1"

FULL = {
    "frr_asn": 64600,
    "frr_router_id": "198.51.100.11",
    "frr_peers": [
        {"address": "198.51.100.21", "asn": 64512, "password": "s3cret", "bfd": True},
        {"address": "198.51.100.22", "asn": 64512, "description": "k8s-node-2"},
    ],
    "frr_import_pod_cidrs": [{"cidr": "198.18.0.0/16", "le": 26, "ge": 24}],
    "frr_import_service_cidrs": [{"cidr": "198.19.0.0/16"}],
    "frr_export_prefixes": ["198.51.100.100/32"],
}


def render(tmp_path: Path, template: str, validate: str) -> str:
    (tmp_path / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"edge": {"hosts": {"edge1": {}}}}}})
    )
    destination = tmp_path / Path(template).stem
    render_role_template(
        "frr",
        template,
        destination,
        FULL,
        inventory=str(tmp_path / "hosts.yml"),
        host="edge1",
        validate=validate,
    )
    return destination.read_text()


@pytest.mark.parametrize(
    ("template", "validate"),
    [("etc/frr/frr.conf.j2", "vtysh --dryrun --inputfile %s"), ("etc/frr/daemons.j2", "sh -n %s")],
)
def test_rendered_file_is_valid_and_equals_its_golden_copy(tmp_path, template, validate):
    rendered = render(tmp_path, template, validate)
    golden = GOLDEN / Path(template).stem
    if UPDATE:
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def run_validation(tmp_path: Path, settings: dict) -> subprocess.CompletedProcess:
    role = REPO / "roles" / "frr"
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "connection": "local",
            "vars_files": [str(role / part / "main.yml") for part in ("defaults", "vars")],
            "tasks": [{"ansible.builtin.import_tasks": str(role / "tasks" / "validate.yml")}],
        }
    ]
    playbook = tmp_path / "validate.yml"
    playbook.write_text(yaml.safe_dump(play))
    # Extra vars: above the role's defaults that vars_files loads (inventory vars would not be).
    (tmp_path / "settings.yml").write_text(yaml.safe_dump(settings))
    environment = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "NO_COLOR": "1"}
    return subprocess.run(
        [
            *(str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,"),
            *("-e", f"@{tmp_path / 'settings.yml'}", str(playbook)),
        ],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=300,
    )


def test_good_settings_pass(tmp_path):
    result = run_validation(tmp_path, FULL)
    assert result.returncode == 0, result.stdout + result.stderr


def broken(change, base: dict = FULL) -> dict:
    """A copy of `base` as `change` leaves it."""
    settings = copy.deepcopy(base)
    change(settings)
    return settings


CASES = [
    pytest.param(
        broken(lambda s: s.pop("frr_asn")), "frr_asn must be an AS number", id="no-local-asn"
    ),
    pytest.param(
        broken(lambda s: s.update(frr_router_id="198.51.100.300")),
        "frr_router_id an IPv4 address",
        id="bad-router-id",
    ),
    pytest.param(
        broken(lambda s: s["frr_peers"][1].pop("asn")),
        "every entry of frr_peers needs `address` (IPv4) and `asn`",
        id="peer-without-asn",
    ),
    pytest.param(
        broken(lambda s: s["frr_peers"][0].update(password="two words")),
        "`password` is a string without spaces",
        id="password-with-space",
    ),
    pytest.param(
        broken(lambda s: s["frr_peers"].append({"address": "198.51.100.21", "asn": 64513})),
        "frr_peers lists an address more than once",
        id="peer-twice",
    ),
    pytest.param(
        broken(lambda s: s["frr_import_pod_cidrs"].append({"cidr": "10.1.2.3/8"})),
        "a network in CIDR form without host bits",
        id="cidr-with-host-bits",
    ),
    pytest.param(
        broken(lambda s: s["frr_import_pod_cidrs"][0].update(le=12)),
        "length < ge <= le <= 32",
        id="le-shorter-than-range",
    ),
    pytest.param(
        broken(lambda s: s["frr_import_service_cidrs"].append({"cidr": "198.18.4.0/24"})),
        "overlap: 198.18.0.0/16 and 198.18.4.0/24",
        id="overlapping-ranges",
    ),
    pytest.param(
        broken(lambda s: s.update(frr_export_prefixes=["198.51.100.300/32"])),
        "frr_export_prefixes must be IPv4 networks",
        id="bad-export",
    ),
]


@pytest.mark.parametrize(("settings", "message"), CASES)
def test_bad_settings_stop_with_a_message_naming_host_and_variable(tmp_path, settings, message):
    result = run_validation(tmp_path, settings)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert "localhost: " in output and message in output, output
