"""playbooks/tasks/cutover_ipvs_weights.yml, the check after each of the cutover's reloads:
the director's IPVS table is read until every real server of both tiers has its step's
weight, and a step whose weights do not arrive fails, naming the real server, the seen and
the expected weight. This kernel has no IPVS: a stand-in `ipvsadm` on PATH prints a table
(the old weights for its first calls, then the given ones), the playbook is the real one."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TASKS = REPO / "playbooks" / "tasks" / "cutover_ipvs_weights.yml"

HEADER = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
"""


def table(edge: int, cluster: int) -> str:
    """Both ports' virtual servers with 2 cluster nodes and 1 edge node at these weights."""
    return HEADER + "".join(
        f"TCP  198.51.100.102:{port} wlc\n"
        f"  -> 198.51.100.21:{port}             Route   {cluster:<6} 3          41\n"
        f"  -> 198.51.100.22:{port}             Route   {cluster:<6} 2          39\n"
        f"  -> 198.51.100.31:{port}             Route   {edge:<6} 0          7\n"
        for port in (80, 443)
    )


def run_check(tmp_path: Path, outputs: list[str], percent: int) -> subprocess.CompletedProcess:
    """The check at `percent` against an ipvsadm that prints outputs[n] at its n-th call (the
    last one from then on; one starting with "!" is an error message)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for number, output in enumerate(outputs):
        (tmp_path / f"table{number}").write_text(output)
    fake = bin_dir / "ipvsadm"
    fake.write_text(
        "#!/bin/sh\n"
        f'test "$*" = "-Ln --exact" || exit 2\n'
        f'calls=$(cat "{tmp_path}/calls" 2>/dev/null || echo 0)\n'
        f'echo $((calls + 1)) > "{tmp_path}/calls"\n'
        f"last={len(outputs) - 1}\n"
        'test "$calls" -gt "$last" && calls=$last\n'
        f'table="{tmp_path}/table$calls"\n'
        # "!" first: ipvsadm's failure, the rest on stderr.
        'case "$(head -c1 "$table")" in "!") tail -c +2 "$table" >&2; exit 1;; esac\n'
        'cat "$table"\n'
    )
    fake.chmod(0o755)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "vars": local,
            "children": {
                "seed_directors": {"hosts": {"dir1": {}}},
                "seed_nodes": {
                    "hosts": {
                        "node1": {"keepalived_node_address": "198.51.100.21/24"},
                        "node2": {"keepalived_node_address": "198.51.100.22/24"},
                    }
                },
                "new_edges": {"hosts": {"edge1": {"keepalived_node_address": "198.51.100.31/24"}}},
            },
        }
    }
    play = [
        {
            "hosts": "seed_directors",
            "gather_facts": False,
            "vars": {
                # As playbooks/cutover.yml's "Steps" play has them.
                "__cutover_cluster_nodes": "{{ groups['seed_nodes'] | sort }}",
                "__cutover_edge_nodes": "{{ groups['new_edges'] | sort }}",
                "cutover_weights_timeout": 5,
                "__cutover_weights_percent": percent,
            },
            "tasks": [{"ansible.builtin.include_tasks": str(TASKS)}],
        }
    ]
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            *("-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={
            **os.environ,
            "PATH": os.pathsep.join([str(bin_dir), os.environ["PATH"]]),
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "NO_COLOR": "1",
        },
        timeout=300,
    )


def test_the_step_waits_until_the_kernel_has_the_weights(tmp_path):
    # 10 % with 1 edge and 2 cluster nodes: 20 and 90; before the reload, 0 and 100.
    result = run_check(tmp_path, [table(0, 100), table(0, 100), table(20, 90)], 10)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int((tmp_path / "calls").read_text()) == 3


def test_weights_that_do_not_arrive_fail_the_step_naming_each_real_server(tmp_path):
    result = run_check(tmp_path, [table(0, 100)], 50)  # 50 %: edge 100, cluster 50
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert "dir1: after 5 s IPVS still does not have the weights of 50 % to the edge" in output
    assert "TCP 198.51.100.102:80: edge1 (198.51.100.31:80) has weight 0" in output
    assert "expected 100" in output
    assert "TCP 198.51.100.102:443: node2 (198.51.100.22:443) has weight 100, expected 50" in output


def test_a_real_server_missing_from_the_table_fails_the_step(tmp_path):
    missing = table(20, 90).replace(
        "  -> 198.51.100.22:443             Route   90     2          39\n", ""
    )
    result = run_check(tmp_path, [missing], 10)
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert "TCP 198.51.100.102:443: node2 (198.51.100.22) is missing, expected weight 90" in output


def test_ipvsadm_failing_fails_the_step_with_its_message(tmp_path):
    error = "Can't initialize ipvs: Protocol not available\n"
    result = run_check(tmp_path, ["!" + error], 10)
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert "to the edge: Can't initialize ipvs: Protocol not available" in output
