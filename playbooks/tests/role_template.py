"""One of a role's templates rendered by Ansible itself (ansible.builtin.template), with the
role's defaults and vars loaded as a play would, for tests that feed the result to the real
program (nginx, nft)."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def render_role_template(
    role: str,
    template: str,
    destination: Path,
    task_vars: dict,
    *,
    inventory: str = "localhost,",
    host: str = "localhost",
    validate: str | None = None,
) -> Path:
    """roles/<role>/templates/<template> rendered for `host` of `inventory` into destination
    (the playbook beside it as render.yml); task_vars rank above the role's defaults, which
    vars_files loads."""
    role_dir = REPO / "roles" / role
    template_task = {"src": str(role_dir / "templates" / template), "dest": str(destination)}
    template_task["mode"] = "0644"
    if validate is not None:
        template_task["validate"] = validate
    play = [
        {
            "hosts": host,
            "gather_facts": False,
            "connection": "local",
            "vars_files": [str(role_dir / part / "main.yml") for part in ("defaults", "vars")],
            "tasks": [{"ansible.builtin.template": template_task, "vars": task_vars}],
        }
    ]
    playbook = destination.with_name("render.yml")
    playbook.write_text(yaml.safe_dump(play))
    environment = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "NO_COLOR": "1"}
    result = subprocess.run(
        [
            *(str(Path(sys.executable).with_name("ansible-playbook")), "-i", inventory),
            *("-e", f"ansible_python_interpreter={sys.executable}", str(playbook)),
        ],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return destination
