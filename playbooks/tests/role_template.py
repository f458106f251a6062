"""One of a role's templates rendered by Ansible itself (ansible.builtin.template), with the
role's defaults and vars loaded as a play would, for tests that feed the result to the real
program (nginx, nft)."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Rendering:
    """roles/<role>/templates/<template> for `host` into `destination`; task_vars rank above
    the role's defaults, which vars_files loads; `validate` as the template task's."""

    template: str
    destination: Path
    task_vars: dict
    host: str = "localhost"
    validate: str | None = None


def render_role_templates(
    role: str, renderings: list[Rendering], *, inventory: str = "localhost,"
) -> list[Path]:
    """Each of `renderings` (hosts of `inventory`), a play each, in one ansible-playbook run:
    its start is most of a render's time, so a test renders all it needs at once. The
    playbook is render.yml beside the first destination."""
    role_dir = REPO / "roles" / role
    plays = []
    for rendering in renderings:
        template_task = {
            "src": str(role_dir / "templates" / rendering.template),
            "dest": str(rendering.destination),
            "mode": "0644",
        }
        if rendering.validate is not None:
            template_task["validate"] = rendering.validate
        plays.append(
            {
                "hosts": rendering.host,
                "gather_facts": False,
                "connection": "local",
                "vars_files": [str(role_dir / part / "main.yml") for part in ("defaults", "vars")],
                "tasks": [{"ansible.builtin.template": template_task, "vars": rendering.task_vars}],
            }
        )
    playbook = renderings[0].destination.with_name("render.yml")
    playbook.write_text(yaml.safe_dump(plays))
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
    return [rendering.destination for rendering in renderings]


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
    rendering = Rendering(template, destination, task_vars, host, validate)
    return render_role_templates(role, [rendering], inventory=inventory)[0]
