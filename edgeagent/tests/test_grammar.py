"""The grammar every value passes before it may reach nginx configuration."""

import base64
import subprocess

import pytest
import support_objects as objects
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa

from edgeagent import cli, grammar


@pytest.mark.parametrize("value", ["a", "default", "kube-system", "a1", "1a", "x" * 63])
def test_dns1123_label_accepts(value):
    assert grammar.dns1123_label(value, "namespace") == value


@pytest.mark.parametrize(
    "value",
    ["", "A", "-a", "a-", "a.b", "a_b", "x" * 64, "a\n", "a;", "ns}", None, 7, ["a"]],
)
def test_dns1123_label_rejects(value):
    with pytest.raises(grammar.Invalid):
        grammar.dns1123_label(value, "namespace")


@pytest.mark.parametrize("value", ["a", "a.b", "web-1.example", "1.2", "x" * 253])
def test_dns1123_subdomain_accepts(value):
    assert grammar.dns1123_subdomain(value, "name") == value


@pytest.mark.parametrize("value", ["", "a..b", ".a", "a.", "A.b", "a b", "x" * 254, "a/b"])
def test_dns1123_subdomain_rejects(value):
    with pytest.raises(grammar.Invalid):
        grammar.dns1123_subdomain(value, "name")


@pytest.mark.parametrize("value", ["1a", "-a", "a.b", "Ab", ""])
def test_service_names_are_dns1035_labels(value):
    with pytest.raises(grammar.Invalid):
        grammar.dns1035_label(value, "service")
    assert grammar.dns1035_label("web-1", "service") == "web-1"


@pytest.mark.parametrize("value", ["http", "h2c", "web-ui", "a" * 15, "1a"])
def test_port_name_accepts(value):
    assert grammar.port_name(value, "port") == value


@pytest.mark.parametrize("value", ["", "80", "a--b", "-http", "http-", "a" * 16, "HTTP", "a b"])
def test_port_name_rejects(value):
    with pytest.raises(grammar.Invalid):
        grammar.port_name(value, "port")


@pytest.mark.parametrize("value", [0, 65536, -1, True, "80", 80.0, None])
def test_port_number_rejects(value):
    with pytest.raises(grammar.Invalid):
        grammar.port_number(value, "port")


@pytest.mark.parametrize(
    "value", ["foo.bar.com", "*.foo.com", "localhost", "a-b.c", "01.2.3.4", "1.2.3"]
)
def test_host_accepts(value):
    assert grammar.host(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1.2.3.4",
        "*",
        "*.",
        "a.*.com",
        "**.foo.com",
        "*foo.com",
        "Foo.com",
        "foo.com.",
        "foo_bar.com",
        "[::1]",
        "foo.com:80",
        "foo.com;",
        "foo.com\n",
        "x" * 64 + ".com",
        "a" * 250 + ".com",
    ],
)
def test_host_rejects(value):
    with pytest.raises(grammar.Invalid):
        grammar.host(value)


@pytest.mark.parametrize(
    ("value", "path_type"),
    [
        ("/", "Prefix"),
        ("/foo", "Exact"),
        ("/foo/", "Prefix"),
        ("/a-b_c.d~e/f!*+,=:@&", "Prefix"),
        ("/foo..bar", "Exact"),
    ],
)
def test_path_accepts(value, path_type):
    assert grammar.path(value, path_type) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "foo",
        "/foo bar",
        "/foo;",
        "/foo{",
        "/foo}",
        "/a'b",
        '/a"b',
        "/a$b",
        "/a#b",
        "/a?b",
        "/a\\b",
        "/a%2fb",
        "/a%20b",
        "/a//b",
        "/a/./b",
        "/a/../b",
        "/a/..",
        "/a/.",
        "/a\nb",
        "/a\x00",
        "/é",
        "/" + "a" * 2048,
        None,
    ],
)
@pytest.mark.parametrize("path_type", ["Exact", "Prefix"])
def test_path_rejects(value, path_type):
    with pytest.raises(grammar.Invalid):
        grammar.path(value, path_type)


def test_implementation_specific_empty_path_is_root():
    assert grammar.path(None, "ImplementationSpecific") == "/"
    assert grammar.path("", "ImplementationSpecific") == "/"
    with pytest.raises(grammar.Invalid):
        grammar.path(None, "Prefix")


@pytest.mark.parametrize("value", ["Regex", "prefix", "", None])
def test_path_type_rejects(value):
    with pytest.raises(grammar.Invalid):
        grammar.path_type(value)


def test_ip_addresses_are_checked_per_family_and_canonical():
    assert grammar.ip_address("10.0.0.1", "a", "IPv4") == "10.0.0.1"
    assert grammar.ip_address("FD00:0::1", "a", "IPv6") == "fd00::1"
    for value, family in [
        ("10.0.0.1", "IPv6"),
        ("::1", "IPv4"),
        ("010.0.0.1", "IPv4"),
        ("10.0.0.256", "IPv4"),
        ("10.0.0.1;", "IPv4"),
        ("example.com", "IPv4"),
    ]:
        with pytest.raises(grammar.Invalid):
            grammar.ip_address(value, "a", family)


def test_annotation_values():
    assert grammar.boolean("true", "a") is True
    assert grammar.boolean("false", "a") is False
    assert grammar.seconds("60", "a") == 60
    assert grammar.seconds("86400", "a") == 86400  # WebSockets: a day, no 3600 cap
    assert grammar.seconds(str(grammar.SECONDS_MAX), "a") == grammar.SECONDS_MAX
    assert grammar.size("8M", "a") == "8m"
    assert grammar.size("0", "a") == "0"
    for text in grammar.GO_TRUE:
        assert grammar.go_boolean(text, "a") is True
    for text in grammar.GO_FALSE:
        assert grammar.go_boolean(text, "a") is False
    for parse, value in [
        (grammar.boolean, "yes"),
        (grammar.boolean, "True"),
        (grammar.go_boolean, "yes"),
        (grammar.go_boolean, "on"),
        (grammar.go_boolean, " true"),
        (grammar.seconds, "0"),
        (grammar.seconds, "60s"),
        (grammar.seconds, str(grammar.SECONDS_MAX + 1)),
        (grammar.seconds, "-1"),
        (grammar.seconds, "1; load_module x"),
        (grammar.size, "1t"),
        (grammar.size, "08m"),
        (grammar.size, "1m;"),
        (grammar.size, 5),
    ]:
        with pytest.raises(grammar.Invalid):
            parse(value, "a")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.0.0.0/0,::/0", ("0.0.0.0/0", "::/0")),  # cert-manager's HTTP-01 solver
        ("10.0.0.0/8", ("10.0.0.0/8",)),
        ("10.1.2.3/8", ("10.0.0.0/8",)),  # host bits cleared, as Go's ParseCIDR does
        ("192.0.2.7", ("192.0.2.7",)),
        ("192.0.2.7/32", ("192.0.2.7/32",)),
        ("2001:DB8::1/32", ("2001:db8::/32",)),
        ("::1", ("::1",)),
        ("::ffff:192.0.2.1", ("::ffff:c000:201",)),
        ("10.0.0.0/8,\n  172.16.0.0/12,\n  192.168.0.0/16\n", None),
        (" 10.0.0.0/8 , 10.0.0.0/8 ", ("10.0.0.0/8",)),
    ],
)
def test_source_ranges_accept(value, expected):
    ranges = grammar.source_ranges(value, "a")
    if expected is None:  # a list over several lines, as real manifests write them
        expected = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
    assert ranges == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        ",",
        "10.0.0.0/8,",
        "10.0.0.0/33",
        "10.0.0.0/255.0.0.0",
        "010.0.0.1",
        "fe80::1%eth0",
        "2001:db8::/129",
        "10.0.0.0/8;",
        "10.0.0.0/8 deny all",
        "10.0.0.0/8\n;load_module /e.so",
        "all",
        "unix:",
        "example.com",
        "255.255.255.255",  # nginx refuses it (see test_source_ranges_nginx_takes)
        "10.0.0.0/8, 255.255.255.255/32",
        ",".join(["10.0.0.1"] * (grammar.SOURCE_RANGES_MAX + 1)),
        8,
    ],
)
def test_source_ranges_refuse(value):
    with pytest.raises(grammar.Invalid):
        grammar.source_ranges(value, "a")


@pytest.mark.parametrize("value", ["0.0.0.0:80", "127.0.0.1:10246", "[::]:443", "*:8080"])
def test_listen_accepts(value):
    assert grammar.listen(value, "listen") == value


@pytest.mark.parametrize(
    "value", ["80", "localhost:80", "1.2.3.4:0", "1.2.3.4:70000", "[zz]:80", "1.2.3.4:80 ssl"]
)
def test_listen_rejects(value):
    with pytest.raises(grammar.Invalid):
        grammar.listen(value, "listen")


def test_messages_stay_on_one_bounded_line():
    with pytest.raises(grammar.Invalid) as caught:
        grammar.host("evil.com;\n} server {" + "x" * 500)
    message = str(caught.value)
    assert "\n" not in message
    assert len(message) < 200


@pytest.fixture(scope="module")
def pair():
    return cli.self_signed("a.example", ("a.example",))


def test_tls_pair_round_trips_to_canonical_pem(pair):
    noisy = b"junk before\n" + pair.certificate_pem + b"\n# trailing text\n"
    parsed = grammar.tls_pair(noisy, pair.key_pem)
    assert parsed.certificate_pem == pair.certificate_pem
    assert parsed.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert b"junk" not in parsed.certificate_pem


def test_tls_pair_keeps_the_chain(pair):
    other = cli.self_signed("ca.example")
    parsed = grammar.tls_pair(pair.certificate_pem + other.certificate_pem, pair.key_pem)
    assert parsed.certificate_pem == pair.certificate_pem + other.certificate_pem


def test_tls_pair_rejects_bad_material(pair):
    other = cli.self_signed("b.example")
    encrypted = serialization.load_pem_private_key(pair.key_pem, None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    dsa_key = dsa.generate_private_key(2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for certificate, key in [
        (b"", pair.key_pem),
        (b"not pem", pair.key_pem),
        (pair.certificate_pem, b""),
        (pair.certificate_pem, pair.certificate_pem),
        (pair.certificate_pem, other.key_pem),
        (pair.certificate_pem, encrypted),
        (pair.certificate_pem, dsa_key),
        (pair.certificate_pem.replace(b"MII", b"MIJ"), pair.key_pem),
    ]:
        with pytest.raises(grammar.Invalid):
            grammar.tls_pair(certificate, key)


@pytest.mark.parametrize(
    ("bits", "digest", "reason"),
    [(1024, "sha256", "ee key too small"), (2048, "sha1", "ca md too weak")],
)
def test_tls_pair_refuses_what_nginx_openssl_refuses(tmp_path, bits, digest, reason):
    """Well-formed and matching, but below the system OpenSSL's security level, where
    nginx -t fails on it (and, before issue 14, on every candidate after it)."""
    certificate, key = objects.openssl_pair(tmp_path, bits, digest)
    with pytest.raises(grammar.Invalid, match=reason):
        grammar.tls_pair(certificate, key)


def test_tls_pair_accepts_rsa_2048_signed_with_sha256(tmp_path):
    certificate, key = objects.openssl_pair(tmp_path, 2048, "sha256")
    assert grammar.tls_pair(certificate, key).certificate_pem.count(b"BEGIN CERTIFICATE") == 2


def test_cert_pair_repr_hides_the_key(pair):
    assert "PRIVATE" not in repr(pair)
    assert "redacted" in repr(pair)


def test_base64_data():
    assert grammar.base64_data(base64.b64encode(b"x").decode(), "d") == b"x"
    with pytest.raises(grammar.Invalid):
        grammar.base64_data("not base64!", "d")


@pytest.mark.parametrize("value", ["edgeagent.io/gateway-controller", "example.net/a/b_c~d", "x/y"])
def test_controller_name_accepts(value):
    assert grammar.controller_name(value, "controllerName") == value


@pytest.mark.parametrize(
    "value", ["no-path", "Example.net/x", "example.net/", "example.net/x;y", "a/b c", "a/b\n"]
)
def test_controller_name_rejects(value):
    with pytest.raises(grammar.Invalid):
        grammar.controller_name(value, "controllerName")


@pytest.mark.parametrize(
    "value",
    [
        "0.0.0.0/0",
        "255.255.255.254/31",
        "255.255.255.0/24",
        "::/0",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ],
)
def test_source_ranges_nginx_takes(tmp_path, value):
    """What the grammar accepts at the edges of the address space, nginx's allow and deny
    take (nginx refuses 255.255.255.255, which the grammar refuses)."""
    (network,) = grammar.source_ranges(value, "a")
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ access_log off; server {{ listen 127.0.0.1:1; location / {{\n"
        f"allow {network}; deny {network}; }} }} }}\n"
    )
    tested = subprocess.run(
        ["nginx", "-t", "-q", "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stderr
