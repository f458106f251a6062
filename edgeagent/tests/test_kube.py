"""Connecting: kubeconfig (with an exec plugin too), or an explicit server with a token file
that rotates."""

import sys
from pathlib import Path

import kubernetes
import yaml
from edgeagent.kube import ConnectionSettings, api_client
from kubeemu.testing import EmulatorThread


def test_kubeconfig(tmp_path):
    with EmulatorThread(token="from-kubeconfig") as api:
        client = api_client(ConnectionSettings(kubeconfig=api.write_kubeconfig(tmp_path / "kc")))
        assert kubernetes.client.CoreV1Api(client).list_namespaced_service("default").items == []


def test_explicit_server_rereads_a_rotated_token(tmp_path):
    token = tmp_path / "token"
    token.write_text("first\n")
    with EmulatorThread(token="first") as api:
        client = api_client(ConnectionSettings(server=api.url, token_file=str(token)))
        core = kubernetes.client.CoreV1Api(client)
        assert core.list_namespaced_service("default").items == []
        api.emulator.token = "second"  # the cluster rotated the token...
        token.write_text("second\n")  # ...and the node got the new one
        assert core.list_namespaced_service("default").items == []


def test_kubeconfig_with_an_exec_credential_plugin(tmp_path):
    """docs/security.md: a kubeconfig whose user runs an exec plugin (a cloud provider's, or a
    script that fetches a short-lived token from a vault) gets its token from the plugin."""
    plugin = tmp_path / "token-plugin"
    plugin.write_text(
        f"#!{sys.executable}\n"
        "import json\n"
        'print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", '
        '"kind": "ExecCredential", "status": {"token": "from-plugin"}}))\n'
    )
    plugin.chmod(0o755)
    with EmulatorThread(token="from-plugin") as api:
        kubeconfig = yaml.safe_load(Path(api.write_kubeconfig(tmp_path / "kc")).read_text())
        (user,) = kubeconfig["users"]
        user["user"] = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": str(plugin),
                "interactiveMode": "Never",
            }
        }
        path = tmp_path / "kc-exec"
        path.write_text(yaml.safe_dump(kubeconfig))
        client = api_client(ConnectionSettings(kubeconfig=str(path)))
        assert kubernetes.client.CoreV1Api(client).list_namespaced_service("default").items == []
