"""The nginx role's nginx.conf includes edgeagent's stream.conf at its top level: `nginx -t`
accepts it, rendered by Ansible with the role's defaults, with each stream.conf a node can
have under `current`: the role's bootstrap one (no stream server), one of an agent with
--enable-ssl-passthrough off and on (`edgeagent render`), and none (a generation of an agent
from before passthrough). The stream module comes from Debian's libnginx-mod-stream, which
the role installs and /etc/nginx/modules-enabled loads."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from role_template import render_role_template
from test_nginx_tls import free_ports, rsa_pair, tls_manifests

NGINX = "/usr/sbin/nginx"
PASSTHROUGH = {"nginx.ingress.kubernetes.io/ssl-passthrough": "true"}


def agent_generation(directory: Path, passthrough: bool) -> Path:
    """`edgeagent render` of a TLS host (passed through, with `passthrough`) on free ports."""
    certificate, key = rsa_pair(directory)
    manifests = tls_manifests(certificate, key)
    if passthrough:
        ingress = manifests[-1]
        ingress["metadata"] = {**ingress["metadata"], "annotations": PASSTHROUGH}
    source = directory / "manifests.yaml"
    source.write_text(yaml.safe_dump_all(manifests))
    http, https, status, proxy, hop = free_ports(5)
    output = directory / "generation"
    render = subprocess.run(
        [
            *(str(Path(sys.executable).with_name("edgeagent")), "render", "-f", str(source)),
            *("-o", str(output), "--status-listen", f"127.0.0.1:{status}"),
            *("--listen-http", f"127.0.0.1:{http}", "--listen-https", f"127.0.0.1:{https}"),
            *("--ssl-passthrough-listen", f"127.0.0.1:{proxy}"),
            *("--ssl-passthrough-backend-listen", f"127.0.0.1:{hop}"),
            *(["--enable-ssl-passthrough"] if passthrough else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert render.returncode == 0, render.stderr
    return output


def bootstrap_stream(directory: Path) -> Path:
    return render_role_template(
        "nginx", "etc/nginx/edgeagent/bootstrap/stream.conf.j2", directory / "stream.conf", {}
    )


@pytest.mark.parametrize("case", ["bootstrap", "agent-off", "agent-on", "before-passthrough"])
def test_nginx_t_accepts_every_stream_conf_of_current(tmp_path, case):
    generation = agent_generation(tmp_path, passthrough=case == "agent-on")
    stream = generation / "stream.conf"
    if case == "bootstrap":
        shutil.copyfile(bootstrap_stream(tmp_path), stream)
    elif case == "before-passthrough":
        stream.unlink()
    if case == "agent-on":
        assert "ssl_preread on;" in stream.read_text()
    else:
        assert "stream {" not in (stream.read_text() if stream.exists() else "")
    (tmp_path / "current").symlink_to(generation)
    main = tmp_path / "nginx.conf"
    render_role_template(
        "nginx", "etc/nginx/nginx.conf.j2", main, {"nginx_agent_dir": str(tmp_path)}
    )
    text = main.read_text()
    # At the top level, before http {}: stream {} is not allowed inside it.
    assert text.index(f"include {tmp_path}/current/stream.con[f];") < text.index("http {")
    text, pids = re.subn(r"^pid [^;]*;", f"pid {tmp_path}/nginx.pid;", text, flags=re.M)
    assert pids == 1
    main.write_text(text)
    result = subprocess.run(
        [NGINX, "-t", "-c", str(main)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
