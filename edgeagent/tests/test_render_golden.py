"""Render against golden files: the exact bytes for the 2017 examples and a set that uses
every routing rule. Regenerate after an intended change with

    EDGEAGENT_UPDATE_GOLDEN=1 .venv/bin/pytest -q edgeagent/tests/test_render_golden.py

and read the diff before committing it.
"""

import base64
import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest
from edgeagent.gateway import routing as gateway_routing

from edgeagent import cli, dynamic, manifests, model, render

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
CASES = {
    "2017": HERE.parent / "examples" / "2017",
    "semantics": GOLDEN / "semantics" / "input",
    "gateway": GOLDEN / "gateway" / "input",
    "traffic": GOLDEN / "traffic" / "input",
    "access": GOLDEN / "access" / "input",
    "secrets": GOLDEN / "secrets" / "input",
    "behaviour": GOLDEN / "behaviour" / "input",
    "backend-tls": GOLDEN / "backend-tls" / "input",
    "gateway-shares": GOLDEN / "gateway-shares" / "input",
    "gateway-regex": GOLDEN / "gateway-regex" / "input",
    "mirror": GOLDEN / "mirror" / "input",
    "gateway-backend-filters": GOLDEN / "gateway-backend-filters" / "input",
    "gateway-retry": GOLDEN / "gateway-retry" / "input",
}
LAYOUT = render.Layout(
    listen_http="0.0.0.0:80",
    listen_https="0.0.0.0:443",
    output_dir="/etc/nginx/edgeagent/gen-{generation}",
    default_certificate="/etc/nginx/tls/default.crt",
    default_key="/etc/nginx/tls/default.key",
)
STANDALONE = dataclasses.replace(LAYOUT, output_dir="/srv/edge")
DYNAMIC_LAYOUT = dataclasses.replace(
    LAYOUT, dynamic_dir="/etc/nginx/edgeagent/dynamic", lua_dir="/opt/edgeagent/lua"
)
DYNAMIC_VERSION = 1764000000000000
UPDATE = os.environ.get("EDGEAGENT_UPDATE_GOLDEN") == "1"


def rendered_case(source: Path) -> tuple[dict[str, bytes], render.Rendered]:
    inputs, load_problems = manifests.load([source])
    options = model.Options()
    built, _ = gateway_routing.build(model.build(inputs, options), inputs, options)
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


def assert_matches_golden(files: dict[str, bytes], expected: Path) -> None:
    """Every rendered file equals its golden copy (EDGEAGENT_UPDATE_GOLDEN=1 rewrites them)."""
    if UPDATE:
        for relative, data in files.items():
            (expected / relative).parent.mkdir(parents=True, exist_ok=True)
            (expected / relative).write_bytes(data)
    assert sorted(files) == sorted(expected_files(expected))
    for relative, data in files.items():
        assert data.decode() == expected_files(expected)[relative].decode(), relative


@pytest.mark.parametrize("case", sorted(CASES))
def test_render_matches_golden(case):
    files, _ = rendered_case(CASES[case])
    assert_matches_golden(files, GOLDEN / case / "expected")


def test_dynamic_render_matches_golden():
    """The dynamic mode: edge.conf without peers or certificate bytes, the standalone main
    config that loads the Lua module, and the state the agent would push (state.txt)."""
    inputs, _ = manifests.load([CASES["semantics"]])
    built = model.build(inputs, model.Options(upstreams_without_endpoints=True))
    rendered = render.render(built, DYNAMIC_LAYOUT)
    files = {
        **rendered.files,
        "state.txt": dynamic.encode(dynamic.state_of(built), DYNAMIC_VERSION, full=True),
        "nginx.conf": render.render_main(dataclasses.replace(DYNAMIC_LAYOUT, output_dir="/srv")),
    }
    assert_matches_golden(files, GOLDEN / "semantics" / "expected-dynamic")


def test_dynamic_generation_ignores_endpoints_and_certificate_bytes():
    """What makes the dynamic mode reload-free: the same structure with other peers and
    another pair for the same Secret renders the same bytes and generation."""
    inputs, _ = manifests.load([CASES["semantics"]])
    options = model.Options(upstreams_without_endpoints=True)
    before = render.render(model.build(inputs, options), DYNAMIC_LAYOUT)
    for endpoint_slice in inputs.endpoint_slices:
        for endpoint in endpoint_slice.get("endpoints") or []:
            endpoint["addresses"] = ["10.99.0.1"]
            endpoint["conditions"] = {"ready": False}
    for secret in inputs.secrets:
        pair = cli.self_signed("rotated.example.com")
        secret["data"] = {
            "tls.crt": base64.b64encode(pair.certificate_pem).decode(),
            "tls.key": base64.b64encode(pair.key_pem).decode(),
        }
    after_model = model.build(inputs, options)
    after = render.render(after_model, DYNAMIC_LAYOUT)
    assert after.files == before.files and after.generation == before.generation
    assert all(upstream.endpoints == () for upstream in after_model.upstreams)


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
        # stream.conf counts only with --enable-ssl-passthrough: off, it never changes.
        if relative != "edge.conf" and (relative != "stream.conf" or b"stream {" in data):
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


# The CLI edge: manifests in, files out (rendering itself is the same code as above).


def test_check_prints_every_problem_and_fails(capsys):
    source = CASES["semantics"]
    assert cli.main(["check", "-f", str(source)]) == 1
    printed = capsys.readouterr().out.replace(f"{source}/", "")
    assert printed == (GOLDEN / "semantics" / "expected" / "problems.txt").read_text()


def test_check_passes_clean_manifests(capsys):
    assert cli.main(["check", "-f", str(CASES["2017"])]) == 0
    assert capsys.readouterr().out == ""


WARNED_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: warned
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/enable-access-log: "false"
    nginx.ingress.kubernetes.io/rate-limit: "100"
spec:
  ingressClassName: edge
  rules:
    - host: warned.example.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{port: 80}]
"""


def test_check_reports_warnings_and_passes(tmp_path, capsys):
    source = write(tmp_path / "warned.yaml", WARNED_INGRESS)
    assert cli.main(["check", "-f", str(source)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Ingress shop/warned: annotation nginx.ingress.kubernetes.io/enable-access-log "
        "'false' is ignored: not supported; it only tunes, so the Ingress is served without it",
        "Ingress shop/warned: annotation nginx.ingress.kubernetes.io/rate-limit '100' is "
        "ignored: ingress-nginx defines no such annotation and ignored it; so does edgeagent",
    ]


def test_check_takes_the_annotation_prefix_and_defaults(tmp_path, capsys):
    source = write(tmp_path / "warned.yaml", WARNED_INGRESS)
    arguments = ["check", "-f", str(source), "--annotations-prefix", "example.com"]
    assert cli.main(arguments) == 0
    assert capsys.readouterr().out == ""  # nginx.ingress.kubernetes.io/* is not read
    with pytest.raises(SystemExit):
        cli.main(["check", "-f", str(source), "--proxy-read-timeout", "60s"])


def test_check_serves_the_gateway_class_it_is_told(capsys):
    """The Gateway API manifests' problems are those of the served class: with another
    class and controller, the edge's own Gateway is not looked at."""
    source = str(CASES["gateway"])
    assert cli.main(["check", "-f", source]) == 1
    assert "listener alt: Accepted PortUnavailable" in capsys.readouterr().out
    other = ["--gateway-class", "other", "--gateway-controller-name", "example.net/gateway"]
    assert cli.main(["check", "-f", source, *other]) == 0
    assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit):
        cli.main(["check", "-f", source, "--gateway-controller-name", "no path"])


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_manifests_as_kubectl_apply_reads_them(tmp_path):
    write(
        tmp_path / "list.yaml",
        """
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec: {ports: [{port: 80}]}
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
---
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: {name: tls, namespace: shop}
stringData: {tls.crt: "crt", tls.key: "key"}
data: {other: eA==}
""",
    )
    write(
        tmp_path / "class.json",
        json.dumps(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": {"name": "e"},
            }
        ),
    )
    write(tmp_path / "notes.txt", "not a manifest")
    inputs, problems = manifests.load([tmp_path])
    assert problems == []
    (web,) = inputs.services
    assert web["metadata"]["namespace"] == "default"
    (secret,) = inputs.secrets
    assert secret["data"] == {"other": "eA==", "tls.crt": "Y3J0", "tls.key": "a2V5"}
    (ingress_class,) = inputs.ingress_classes
    assert "namespace" not in ingress_class["metadata"]


@pytest.mark.parametrize(
    ("content", "message"),
    [("a: [unclosed", "bad.yaml"), ("- just\n- a list\n", "not a mapping")],
)
def test_unreadable_manifests_are_a_clear_error(tmp_path, capsys, content, message):
    bad = write(tmp_path / "bad.yaml", content)
    assert cli.main(["check", "-f", str(bad)]) == 2
    assert message in capsys.readouterr().err
    assert cli.main(["check", "-f", str(tmp_path / "missing.yaml")]) == 2


def test_render_writes_keys_private_and_removes_stale_certificates(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "render",
        "-o",
        str(out),
        "--listen-http",
        "127.0.0.1:1",
        "--listen-https",
        "127.0.0.1:2",
    ]
    assert cli.main([*argv, "-f", str(CASES["semantics"])]) == 0
    assert "Secret shop/no-such-secret" in capsys.readouterr().err
    secret_file = out / "certs" / "shop_secure-tls.pem"
    default = out / cli.DEFAULT_CERTIFICATE_FILE
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert default.stat().st_mode & 0o777 == 0o600
    assert (out / "edge.conf").stat().st_mode & 0o777 == 0o644
    default_pem = default.read_bytes()
    # Without that Secret's Ingress, its file goes; the default pair is kept as it was.
    assert cli.main([*argv, "-f", str(CASES["2017"])]) == 0
    assert not secret_file.exists()
    assert default.read_bytes() == default_pem
    assert b"PRIVATE KEY" not in capsys.readouterr().err.encode()


def test_render_with_a_given_default_certificate(tmp_path):
    pair = cli.self_signed("given")
    crt = tmp_path / "d.crt"
    key = tmp_path / "d.key"
    crt.write_bytes(pair.certificate_pem)
    key.write_bytes(pair.key_pem)
    out = tmp_path / "out"
    argv = ["render", "-f", str(CASES["2017"]), "-o", str(out)]
    argv += ["--listen-http", "127.0.0.1:1", "--listen-https", "127.0.0.1:2"]
    assert cli.main([*argv, "--default-certificate", str(crt), "--default-key", str(key)]) == 0
    edge = (out / "edge.conf").read_text()
    assert f"ssl_certificate {crt};" in edge
    assert f"ssl_certificate_key {key};" in edge
    assert not (out / cli.DEFAULT_CERTIFICATE_FILE).exists()
    assert cli.main([*argv, "--default-key", str(key)]) == 2


@pytest.mark.parametrize(
    "bad", [["--listen-http", "localhost:80"], ["--ingress-class", "Not_A_Name"]]
)
def test_bad_arguments_are_usage_errors(tmp_path, bad):
    argv = ["render", "-f", str(CASES["2017"]), "-o", str(tmp_path)]
    argv += ["--listen-http", "127.0.0.1:1", "--listen-https", "127.0.0.1:2", *bad]
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
