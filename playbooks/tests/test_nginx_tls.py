"""TLS of the edge's listeners, as a client sees it: Debian's sslscan against a real nginx.

nginx runs the nginx role's nginx.conf, rendered by Ansible with the role's defaults, and the
edge.conf that `edgeagent render` writes for an Ingress with a TLS host (an RSA-2048 pair
made with the system OpenSSL, like most certificates in the wild); both on loopback ports.
The scan must find TLS 1.2 and 1.3 only, AEAD ciphers with forward secrecy only, no
renegotiation, and the host's certificate served for its name; a ClientHello of our own that
offers DEFLATE must get a ServerHello without compression.
"""

import base64
import os
import re
import socket
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml
from role_template import render_role_template

NGINX = "/usr/sbin/nginx"
SSLSCAN = "/usr/bin/sslscan"
HOST = "secure.example"
START_SECONDS = 30
# Key exchanges with forward secrecy (TLS 1.3 has nothing else) and AEAD bulk ciphers.
FORWARD_SECRET = re.compile(r"^(ECDHE|DHE)-")
AEAD = re.compile(r"(GCM|CHACHA20[-_]POLY1305|CCM)")


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all probes bound until every port is chosen)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def rsa_pair(directory: Path) -> tuple[bytes, bytes]:
    """A self-signed RSA-2048 certificate for HOST, from the system's openssl."""
    key, certificate = directory / "host.key", directory / "host.crt"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}"),
            *("-keyout", str(key), "-out", str(certificate)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return certificate.read_bytes(), key.read_bytes()


def tls_manifests(certificate: bytes, key: bytes) -> list[dict]:
    """An Ingress with a TLS host, its Secret and its Service (no endpoints needed)."""
    meta = {"name": "secure", "namespace": "default"}
    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "edge"}, "spec": {"controller": "edgeops.example/edgeagent"}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": meta,
         "data": {"tls.crt": base64.b64encode(certificate).decode(),
                  "tls.key": base64.b64encode(key).decode()}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 80}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
         "spec": {"ingressClassName": "edge", "tls": [{"hosts": [HOST], "secretName": "secure"}],
                  "rules": [{"host": HOST, "http": {"paths": [{
                      "path": "/", "pathType": "Prefix",
                      "backend": {"service": {"name": "secure", "port": {"number": 80}}}}]}}]}},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """nginx serving the role's nginx.conf and the agent's edge.conf; yields the HTTPS port
    and the host's certificate."""
    root = tmp_path_factory.mktemp("edge")
    certificate, key = rsa_pair(root)
    manifests = root / "manifests.yaml"
    manifests.write_text(yaml.safe_dump_all(tls_manifests(certificate, key)))
    http, https, status = free_ports(3)
    render = subprocess.run(
        [
            *(str(Path(sys.executable).with_name("edgeagent")), "render", "-f", str(manifests)),
            *("-o", str(root / "current"), "--status-listen", f"127.0.0.1:{status}"),
            *("--listen-http", f"127.0.0.1:{http}", "--listen-https", f"127.0.0.1:{https}"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert render.returncode == 0, render.stderr
    main = root / "nginx.conf"
    render_role_template("nginx", "etc/nginx/nginx.conf.j2", main, {"nginx_agent_dir": str(root)})
    # The only change for a test run: the pid file away from the system's (as the agent's
    # shadow configuration does).
    text, pids = re.subn(r"^pid [^;]*;", f"pid {root}/nginx.pid;", main.read_text(), flags=re.M)
    assert pids == 1
    main.write_text(text)
    nginx = subprocess.Popen(
        [NGINX, "-c", str(main), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert nginx.poll() is None, nginx.stderr.read()
            try:
                socket.create_connection(("127.0.0.1", https), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.1)
        yield https, certificate
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)


def sslscan(port: int, sni: str) -> ElementTree.Element:
    result = subprocess.run(
        [SSLSCAN, "--no-colour", "--xml=-", f"--sni-name={sni}", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return ElementTree.fromstring(result.stdout[result.stdout.index("<?xml") :]).find("ssltest")


@pytest.fixture(scope="module")
def scan(edge):
    port, _ = edge
    return sslscan(port, HOST)


def test_only_tls_1_2_and_1_3(scan):
    enabled = {
        f"{each.get('type')}{each.get('version')}"
        for each in scan.iter("protocol")
        if each.get("enabled") == "1"
    }
    assert enabled == {"tls1.2", "tls1.3"}


def test_only_aead_ciphers_with_forward_secrecy(scan):
    accepted = [
        each for each in scan.iter("cipher") if each.get("status") in {"accepted", "preferred"}
    ]
    assert accepted
    for cipher in accepted:
        name, version = cipher.get("cipher"), cipher.get("sslversion")
        assert version in {"TLSv1.2", "TLSv1.3"}, name
        if version == "TLSv1.2":  # every TLS 1.3 suite is AEAD with an ephemeral exchange
            assert FORWARD_SECRET.match(name), name
        assert AEAD.search(name), name


def test_no_renegotiation(scan):
    assert scan.find("renegotiation").get("supported") == "0"


def client_hello_offering_deflate(server_name: str) -> bytes:
    """A TLS 1.2 ClientHello (RFC 5246) whose compression methods are DEFLATE, then null."""

    def vector(length_bytes: int, data: bytes) -> bytes:
        return len(data).to_bytes(length_bytes, "big") + data

    def extension(kind: int, data: bytes) -> bytes:
        return struct.pack("!H", kind) + vector(2, data)

    name = server_name.encode()
    extensions = (
        extension(0, vector(2, b"\0" + vector(2, name)))  # server_name
        + extension(10, vector(2, struct.pack("!HH", 0x001D, 0x0017)))  # x25519, P-256
        + extension(11, vector(1, b"\0"))  # ec_point_formats: uncompressed
        + extension(13, vector(2, struct.pack("!HHH", 0x0804, 0x0401, 0x0403)))  # sigalgs
    )
    body = (
        b"\x03\x03"  # TLS 1.2
        + os.urandom(32)
        + vector(1, b"")  # no session id
        + vector(2, struct.pack("!HH", 0xC02F, 0xC02B))  # ECDHE-{RSA,ECDSA}-AES128-GCM-SHA256
        + vector(1, b"\x01\x00")  # compression methods: DEFLATE, null
        + vector(2, extensions)
    )
    handshake = b"\x01" + vector(3, body)  # client_hello
    return b"\x16\x03\x01" + vector(2, handshake)


def server_compression_method(port: int, server_name: str) -> int:
    """The compression method of the ServerHello the edge answers a DEFLATE offer with.
    (sslscan leaves compression out when its OpenSSL has no zlib, as Debian's has not.)"""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(client_hello_offering_deflate(server_name))
        received = b""
        while len(received) < 5 + 4 + 2 + 32 + 1:
            chunk = connection.recv(4096)
            assert chunk, f"connection closed after {received!r}"
            received += chunk
        assert received[0] == 0x16 and received[5] == 2, f"no ServerHello: {received[:16]!r}"
        session_id_length = received[5 + 4 + 2 + 32]
        offset = 5 + 4 + 2 + 32 + 1 + session_id_length + 2  # past the cipher suite
        while len(received) <= offset:
            received += connection.recv(4096)
        return received[offset]


def test_no_tls_compression(edge):
    port, _ = edge
    assert server_compression_method(port, HOST) == 0  # null: DEFLATE was refused


def test_the_hosts_certificate_is_served(edge, scan):
    _, certificate = edge
    subjects = [each.findtext("subject") for each in scan.iter("certificate")]
    assert any(HOST in (subject or "") for subject in subjects), subjects
    served = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{edge[0]}", "-servername", HOST],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", served, re.S)
    assert pem and pem.group(0).strip() == certificate.decode().strip()
