"""Basic authentication (annotations/basicauth.py) through a real nginx, in the static and
the dynamic mode, with htpasswd lines made by real tools (openssl passwd, bcrypt), and
how the annotations and the Secret's content are read."""

import base64
import hashlib
import stat
import subprocess

import bcrypt
import pytest
from edgeagent.annotations import basicauth
from edgeagent.controller import references
from support_http import request as http_request
from support_nginx import assert_only_rendered_directives, echo_site
from support_objects import endpoint_slice, ingress, path, rule, service

from edgeagent import annotations, model, render

ANNOTATION = "nginx.ingress.kubernetes.io/"
PASSWORD = "s3cret pass"


def sha_line(user: str, password: str) -> str:
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    return f"{user}:{{SHA}}{digest}"


def openssl_line(user: str, password: str, scheme: str) -> str:
    hashed = subprocess.run(
        ["openssl", "passwd", scheme, "-stdin"],
        input=password,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return f"{user}:{hashed}"


def bcrypt_line(user: str, password: str) -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:{hashed.replace('$2b$', '$2y$', 1)}"


def opaque_secret(name: str, data: dict[str, str], namespace: str = "default") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def protected(name: str, secret: str, namespace: str = "default", **values: str) -> dict:
    written = {ANNOTATION + "auth-type": "basic", ANNOTATION + "auth-secret": secret}
    written |= {ANNOTATION + "auth-" + key.replace("_", "-"): v for key, v in values.items()}
    return ingress(name, rule(name, path("/", "site")), namespace=namespace, annotations=written)


def auth_header(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def site_inputs(backend) -> model.Inputs:
    objects = model.Inputs()
    objects.services.append(service("site"))
    objects.endpoint_slices.append(endpoint_slice("site", [(backend.host, True)], backend.port))
    file_lines = "\n".join(
        [
            "# made by htpasswd and openssl",
            sha_line("sha", PASSWORD),
            openssl_line("apr", PASSWORD, "-apr1"),
            openssl_line("md5", PASSWORD, "-1"),
            openssl_line("sha512", PASSWORD, "-6"),
            bcrypt_line("bcrypt", PASSWORD),
            "",
        ]
    )
    objects.secrets.extend(
        [
            opaque_secret("users", {"auth": file_lines}),
            opaque_secret("user-map", {"alice": bcrypt_line("x", PASSWORD).split(":", 1)[1]}),
            opaque_secret("broken", {"auth": "alice:not-a-hash\n"}),
        ]
    )
    objects.ingresses.extend(
        [
            protected("file", "users", realm="Staff only"),
            protected("own-ns", "default/users"),
            protected("map", "user-map", secret_type="auth-map", realm=""),
            protected("missing", "nowhere"),
            protected("malformed", "broken"),
            ingress("open", rule("open", path("/", "site"))),
        ]
    )
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    with echo_site(
        tmp_path_factory.mktemp("basic-auth"),
        ["site"],
        lambda started: site_inputs(started["site"]),
        request.param == "dynamic",
    ) as built:
        yield built


def get(site, host: str, headers: dict | None = None):
    return http_request(site.ports.http, host, "/page", headers=headers)


def test_the_rendered_configuration_holds_only_template_directives(site):
    assert_only_rendered_directives(site.directory / "nginx.conf")


def test_without_credentials_401_names_the_realm(site):
    answer = get(site, "file")
    assert answer.status == 401
    assert answer.headers["www-authenticate"] == 'Basic realm="Staff only"'
    assert get(site, "map").headers["www-authenticate"] == 'Basic realm=""'


@pytest.mark.parametrize("user", ["sha", "apr", "md5", "sha512", "bcrypt"])
def test_each_hash_scheme_lets_its_user_in(site, user):
    answer = get(site, "file", auth_header(user, PASSWORD))
    assert (answer.status, answer.backend) == (200, "site")


def test_a_wrong_password_or_unknown_user_gets_401(site):
    assert get(site, "file", auth_header("apr", PASSWORD + "x")).status == 401
    assert get(site, "file", auth_header("nobody", PASSWORD)).status == 401


def test_auth_map_keys_are_the_users(site):
    assert get(site, "map", auth_header("alice", PASSWORD)).status == 200
    assert get(site, "map", auth_header("alice", "wrong")).status == 401


def test_own_namespace_written_out_is_the_same_secret(site):
    assert get(site, "own-ns", auth_header("sha", PASSWORD)).status == 200


def test_missing_or_malformed_secret_answers_503_and_harms_no_other(site):
    assert get(site, "missing", auth_header("sha", PASSWORD)).status == 503
    assert get(site, "malformed", auth_header("alice", "x")).status == 503
    assert get(site, "open").status == 200
    reasons = {(p.name, p.code): p.reason for p in site.model.problems}
    assert "the Secret does not exist; its paths answer 503" in reasons["missing", "secret"]
    assert "entry 1 (user 'alice') has a hash nginx cannot check" in reasons["malformed", "secret"]
    assert "not-a-hash" not in reasons["malformed", "secret"]


def test_the_user_file_is_private_and_named_by_its_content(site):
    # users (twice: file and own-ns, one file) and user-map; none for the unusable ones.
    written = [p for p in site.rendered.files if p.startswith("auth/")]
    assert len(written) == 2
    for relative in written:
        assert render.is_private(relative)
        assert stat.S_IMODE((site.directory / relative).stat().st_mode) & 0o007 == 0
    assert b"not-a-hash" not in b"".join(site.rendered.files.values())


def test_a_changed_secret_is_a_new_generation(tmp_path):
    inputs = site_inputs(type("B", (), {"host": "127.0.0.2", "port": 8080})())
    first = render.render(model.build(inputs, model.Options()), _layout(tmp_path))
    inputs.secrets[0] = opaque_secret("users", {"auth": sha_line("sha", "other")})
    second = render.render(model.build(inputs, model.Options()), _layout(tmp_path))
    assert first.generation != second.generation
    assert {p for p in second.files if p.startswith("auth/")} != {
        p for p in first.files if p.startswith("auth/")
    }


def _layout(directory) -> render.Layout:
    return render.Layout(
        listen_http="127.0.0.1:8080",
        listen_https="127.0.0.1:8443",
        output_dir=str(directory),
        default_certificate=str(directory / "default.pem"),
        default_key=str(directory / "default.pem"),
    )


def findings(values: dict[str, str], namespace: str = "default") -> dict[str, tuple[str, str]]:
    parsed = annotations.parse(
        {ANNOTATION + key: value for key, value in values.items()}, annotations.Config()
    )
    return {f.key[len(ANNOTATION) :]: (f.status, f.reason) for f in parsed.findings}


@pytest.mark.parametrize(
    ("values", "refused", "reason"),
    [
        ({"auth-type": "digest", "auth-secret": "s"}, "auth-type", "no digest"),
        ({"auth-type": "Basic", "auth-secret": "s"}, "auth-type", "must be basic"),
        ({"auth-secret": "s"}, "auth-secret", "needs nginx.ingress.kubernetes.io/auth-type"),
        ({"auth-type": "basic"}, "auth-type", "needs nginx.ingress.kubernetes.io/auth-secret"),
        ({"auth-realm": "x"}, "auth-realm", "needs nginx.ingress.kubernetes.io/auth-type"),
        ({"auth-type": "basic", "auth-secret": "s", "auth-realm": 'a" b'}, "auth-realm", ""),
        ({"auth-type": "basic", "auth-secret": "s", "auth-realm": "$host"}, "auth-realm", ""),
        ({"auth-type": "basic", "auth-secret": "../s"}, "auth-secret", "DNS-1123"),
        ({"auth-type": "basic", "auth-secret": "s;x"}, "auth-secret", "DNS-1123"),
        (
            {"auth-type": "basic", "auth-secret": "s", "auth-secret-type": "x"},
            "auth-secret-type",
            "",
        ),
    ],
)
def test_malformed_or_incomplete_annotations_refuse_the_ingress(values, refused, reason):
    found = findings(values)
    assert found[refused][0] == "refused"
    assert reason in found[refused][1]


def test_another_namespace_is_refused_for_tenant_isolation():
    objects = model.Inputs()
    objects.services.append(service("site", namespace="team-a"))
    objects.secrets.append(opaque_secret("users", {"auth": sha_line("u", "p")}, "team-b"))
    objects.ingresses.append(protected("cross", "team-b/users", namespace="team-a"))
    built = model.build(objects, model.Options())
    assert not built.servers
    (problem,) = [p for p in built.problems if p.name == "cross"]
    assert "only the Ingress's own namespace (team-a)" in problem.reason


def test_references_hold_the_named_secret_of_the_own_namespace_only():
    ingresses = [
        protected("a", "users", namespace="team-a"),
        protected("b", "team-b/users", namespace="team-a"),
        protected("c", "team-c/users", namespace="team-c"),
    ]
    refs = references(ingresses, "nginx.ingress.kubernetes.io")
    assert refs.secrets == {("team-a", "users"), ("team-c", "users")}
    assert references(ingresses, "other.example").secrets == frozenset()


@pytest.mark.parametrize(
    "line",
    [
        "alice:$apr1$short",
        "alice",
        "al ice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=",
        "alice:abcdefghijklm",  # a DES crypt: eight characters at most
        "alice:$6$salt$",
    ],
)
def test_htpasswd_lines_nginx_cannot_check_are_refused(line):
    auth = basicauth.BasicAuth((None, "s"), basicauth.AUTH_FILE, "")
    _, reason = basicauth.resolve(auth, opaque_secret("s", {"auth": line}))
    assert reason is not None and "entry 1" in reason


def test_secret_without_the_key_or_with_binary_data_is_refused():
    auth = basicauth.BasicAuth((None, "s"), basicauth.AUTH_FILE, "")
    assert "lacks the key auth" in basicauth.resolve(auth, opaque_secret("s", {"x": "y"}))[1]
    binary = {"metadata": {"name": "s"}, "data": {"auth": base64.b64encode(b"\xff").decode()}}
    assert "base64 of ASCII" in basicauth.resolve(auth, binary)[1]
    assert "lists no user" in basicauth.resolve(auth, opaque_secret("s", {"auth": "# none"}))[1]


def test_the_repr_never_shows_the_hashes():
    auth = basicauth.BasicAuth((None, "s"), basicauth.AUTH_FILE, "", b"alice:{SHA}x\n")
    assert "SHA" not in repr(auth)
