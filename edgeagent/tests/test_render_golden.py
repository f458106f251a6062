"""Render against golden files: the exact bytes for the 2017 examples and a set that uses
every routing rule. Regenerate after an intended change with

    EDGEAGENT_UPDATE_GOLDEN=1 .venv/bin/pytest -q edgeagent/tests/test_render_golden.py

and read the diff before committing it.
"""

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from edgeagent import cli, manifests, model, render

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
CASES = {
    "2017": HERE.parent / "examples" / "2017",
    "semantics": GOLDEN / "semantics" / "input",
}
LAYOUT = render.Layout(
    listen_http="0.0.0.0:80",
    listen_https="0.0.0.0:443",
    output_dir="/etc/nginx/edgeagent/gen-{generation}",
    default_certificate="/etc/nginx/tls/default.crt",
    default_key="/etc/nginx/tls/default.key",
)
STANDALONE = dataclasses.replace(LAYOUT, output_dir="/srv/edge")
UPDATE = os.environ.get("EDGEAGENT_UPDATE_GOLDEN") == "1"


def rendered_case(source: Path) -> tuple[dict[str, bytes], render.Rendered]:
    inputs, load_problems = manifests.load([source])
    built = model.build(inputs, model.Options())
    rendered = render.render(built, LAYOUT)
    lines = [cli.problem_line(p) for p in [*load_problems, *built.problems]]
    problems = "".join(f"{line}\n" for line in lines).replace(f"{source}/", "")
    files = {
        **rendered.files,
        "problems.txt": problems.encode(),
        "served.txt": "".join(f"{ns}/{name}\n" for ns, name in built.served_ingresses).encode(),
        "nginx.conf": render.render_main(STANDALONE),
    }
    return files, rendered


def expected_files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_render_matches_golden(case):
    files, _ = rendered_case(CASES[case])
    expected = GOLDEN / case / "expected"
    if UPDATE:
        for relative, data in files.items():
            (expected / relative).parent.mkdir(parents=True, exist_ok=True)
            (expected / relative).write_bytes(data)
    assert sorted(files) == sorted(expected_files(expected))
    for relative, data in files.items():
        assert data.decode() == expected_files(expected)[relative].decode(), relative


@pytest.mark.parametrize("case", sorted(CASES))
def test_generation_is_derivable_from_the_files(case):
    """What render.py's docstring promises the daemon: the hash of the body and certs."""
    _, rendered = rendered_case(CASES[case])
    edge = rendered.files["edge.conf"].decode()
    header, body = edge.split("\n", 1)
    body = body[: body.index("\n# Loopback status server")]
    body = body.replace(rendered.generation, "{generation}")  # output_dir as rendered
    digest = hashlib.sha256(body.encode())
    for relative, data in rendered.files.items():
        if relative != "edge.conf":
            digest.update(relative.encode() + b"\0" + data)
    assert rendered.generation == digest.hexdigest()[:16]
    assert header.startswith(f"# edgeagent generation {rendered.generation};")
    assert f'return 200 "{rendered.generation}\\n";' in edge
    assert rendered.output_dir == f"/etc/nginx/edgeagent/gen-{rendered.generation}"


def test_render_refuses_a_value_that_is_not_a_plain_token():
    """The second lock: even a model that bypassed validation cannot inject syntax."""
    hostile = model.Location("exact", "/x; } load_module /tmp/x.so; #", None, 404)
    server = model.Server("h.example", (hostile,), False, None)
    built = model.Model((server,), model.Server("", (), True, None), (), {}, (), ())
    with pytest.raises(ValueError, match="not a plain nginx token"):
        render.render(built, LAYOUT)


@pytest.mark.parametrize(
    "field",
    [
        {"listen_http": "0.0.0.0:80 ssl; include /x"},
        {"output_dir": "/etc/nginx/x; load_module /y"},
        {"output_dir": "relative/dir"},
        {"default_certificate": "/etc/default cert.pem"},
        {"status_listen": "localhost:1"},
    ],
)
def test_layout_values_are_checked(field):
    built = model.build(model.Inputs(), model.Options())
    with pytest.raises(ValueError):
        render.render(built, dataclasses.replace(LAYOUT, **field))


def test_standalone_main_needs_a_fixed_directory():
    with pytest.raises(ValueError, match="fixed output_dir"):
        render.render_main(LAYOUT)
