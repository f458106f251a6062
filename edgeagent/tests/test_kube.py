"""Connecting: kubeconfig, or an explicit server with a token file that rotates."""

import kubernetes
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
