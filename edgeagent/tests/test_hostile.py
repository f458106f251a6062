"""IngressNightmare-class input: every hostile object is skipped with a reason, the rest
keeps serving, nginx accepts the result, and no injected directive reaches it.

Payloads follow the published ones: CVE-2025-24514 (auth-url), CVE-2025-1097
(auth-tls-match-cn), CVE-2025-1098 (mirror-target, mirror-host), CVE-2025-1974 (ssl_engine
loading a shared object through the admission webhook's nginx -t), CVE-2021-25742 and
CVE-2023-5043 (snippets), CVE-2023-5044 (permanent-redirect), CVE-2022-4886 and
CVE-2021-25745 (paths), and the same tricks through every other field that reaches
configuration: hosts, names, namespaces, ports, TLS Secrets, endpoints.
"""

import base64
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from edgeagent.annotations import balance, retry
from support_http import Backends, request
from support_nginx import (
    NginxRunner,
    Ports,
    assert_only_rendered_directives,
    nginx_test,
    render_site,
)
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import cli, grammar, manifests, model

GIXY = str(Path(sys.executable).with_name("gixy"))
GOLDEN_SEMANTICS = Path(__file__).resolve().parent / "golden" / "semantics" / "input"
GOLDEN_ACCESS = Path(__file__).resolve().parent / "golden" / "access" / "input"
GOLDEN_SECRETS = Path(__file__).resolve().parent / "golden" / "secrets" / "input"
GOLDEN_BACKEND_TLS = Path(__file__).resolve().parent / "golden" / "backend-tls" / "input"

CLOSE_AND_LOAD = "; } } load_module /tmp/evil.so; ssl_engine /proc/self/fd/12; http { server { #"
NEWLINE_DIRECTIVE = "x\nssl_engine /proc/1/fd/3;\n#"
INJECTED = ("load_module", "ssl_engine", "content_by_lua", "evil.so", "/e.so", "injection_point")


def annotated(name: str, annotations: dict) -> dict:
    return ingress(name, rule(f"{name}.example.com", path("/", "app")), annotations=annotations)


def with_field(name: str, change) -> dict:
    obj = ingress(name, rule(f"{name}.example.com", path("/", "app")))
    change(obj)
    return obj


def first_path(obj: dict) -> dict:
    return obj["spec"]["rules"][0]["http"]["paths"][0]


NGINX_ANNOTATION = "nginx.ingress.kubernetes.io/"
HOSTILE_INGRESSES = {
    "cve-2025-24514-auth-url": annotated(
        "auth-url", {NGINX_ANNOTATION + "auth-url": "http://example.com/#;\ninjection_point"}
    ),
    "cve-2025-1097-auth-tls-match-cn": annotated(
        "match-cn",
        {
            NGINX_ANNOTATION + "auth-tls-secret": "default/ca",
            NGINX_ANNOTATION + "auth-tls-match-cn": "CN=abc #(\n){}\n }}\nssl_engine ../../x;\n#",
        },
    ),
    "cve-2025-1098-mirror-target": annotated(
        "mirror-target",
        {NGINX_ANNOTATION + "mirror-target": "https://x/$request_uri;\n}\nssl_engine /e.so;#"},
    ),
    "cve-2025-1098-mirror-host": annotated(
        "mirror-host", {NGINX_ANNOTATION + "mirror-host": "x.com; } load_module /e.so; #"}
    ),
    "mirror-target-other-variable": annotated(
        "mirror-variable", {NGINX_ANNOTATION + "mirror-target": "http://x$host$request_uri"}
    ),
    "mirror-target-longer-variable": annotated(
        "mirror-longer", {NGINX_ANNOTATION + "mirror-target": "http://x/$request_uri_x"}
    ),
    "mirror-target-braced-variable": annotated(
        "mirror-braced", {NGINX_ANNOTATION + "mirror-target": "http://x/${request_uri}"}
    ),
    "mirror-target-variable-in-host": annotated(
        "mirror-in-host", {NGINX_ANNOTATION + "mirror-target": "http://$request_uri.x/"}
    ),
    "mirror-target-quote": annotated(
        "mirror-quote", {NGINX_ANNOTATION + "mirror-target": 'http://x/"' + CLOSE_AND_LOAD}
    ),
    "custom-headers-payload": annotated(
        "custom-headers", {NGINX_ANNOTATION + "custom-headers": "default/h" + CLOSE_AND_LOAD}
    ),
    "mirror-host-with-target": annotated(
        "mirror-host-target",
        {
            NGINX_ANNOTATION + "mirror-target": "http://192.0.2.1/",
            NGINX_ANNOTATION + "mirror-host": 'x";' + CLOSE_AND_LOAD,
        },
    ),
    "cve-2025-1974-ssl-engine": annotated(
        "ssl-engine",
        {NGINX_ANNOTATION + "auth-url": "http://x/#;}}}\n\nssl_engine /proc/1/fd/9;\n"},
    ),
    "cve-2021-25742-configuration-snippet": annotated(
        "snippet",
        {
            NGINX_ANNOTATION + "configuration-snippet": (
                "content_by_lua_block { ngx.say(io.open('/var/run/secrets/token'):read()) }"
            )
        },
    ),
    "cve-2023-5043-server-snippet": annotated(
        "server-snippet", {NGINX_ANNOTATION + "server-snippet": "location /x { alias /; }"}
    ),
    "cve-2023-5044-permanent-redirect": annotated(
        "redirect", {NGINX_ANNOTATION + "permanent-redirect": "https://x;\nroot /;"}
    ),
    "default-backend-with-payload": annotated(
        "default-backend",
        {NGINX_ANNOTATION + "default-backend": "errors;\n}\nload_module /e.so;#"},
    ),
    "custom-http-errors-with-payload": annotated(
        "custom-http-errors",
        {NGINX_ANNOTATION + "custom-http-errors": "404 = @x; } location @x { ssl_engine /e.so"},
    ),
    "supported-annotation-with-payload": annotated(
        "timeout", {NGINX_ANNOTATION + "proxy-read-timeout": "60;\nload_module /e.so"}
    ),
    "body-size-with-payload": annotated(
        "body", {NGINX_ANNOTATION + "proxy-body-size": "1m; } location /x { root /"}
    ),
    "ssl-redirect-with-payload": annotated(
        "ssl", {NGINX_ANNOTATION + "ssl-redirect": "true; return 200"}
    ),
    "force-ssl-redirect-with-payload": annotated(
        "force-ssl", {NGINX_ANNOTATION + "force-ssl-redirect": "true;\nload_module /e.so;"}
    ),
    "timeout-past-the-limit": annotated(
        "timeout-limit", {NGINX_ANNOTATION + "proxy-send-timeout": "99999999999999999999"}
    ),
    "allowlist-with-directive": annotated(
        "allow-directive",
        {NGINX_ANNOTATION + "whitelist-source-range": "0.0.0.0/0; allow all; load_module /e.so"},
    ),
    "allowlist-newline-close": annotated(
        "allow-close",
        {NGINX_ANNOTATION + "allowlist-source-range": "10.0.0.0/8,\n}\nssl_engine /e.so;\n#"},
    ),
    "allowlist-unix-socket": annotated(
        "allow-unix", {NGINX_ANNOTATION + "allowlist-source-range": "unix:"}
    ),
    "allowlist-ipv6-zone": annotated(
        "allow-zone", {NGINX_ANNOTATION + "allowlist-source-range": "fe80::1%lo;deny all"}
    ),
    "denylist-with-variable": annotated(
        "deny-variable", {NGINX_ANNOTATION + "denylist-source-range": "$remote_addr"}
    ),
    "denylist-close-and-load": annotated(
        "deny-close", {NGINX_ANNOTATION + "denylist-source-range": "10.0.0.0/8" + CLOSE_AND_LOAD}
    ),
    "x-forwarded-prefix-quote": annotated(
        "prefix-quote", {NGINX_ANNOTATION + "x-forwarded-prefix": '/a";' + CLOSE_AND_LOAD}
    ),
    "x-forwarded-prefix-variable": annotated(
        "prefix-variable", {NGINX_ANNOTATION + "x-forwarded-prefix": "/$http_authorization"}
    ),
    "upstream-vhost-newline": annotated(
        "vhost-newline", {NGINX_ANNOTATION + "upstream-vhost": "a.example" + NEWLINE_DIRECTIVE}
    ),
    "upstream-vhost-variable": annotated(
        "vhost-variable", {NGINX_ANNOTATION + "upstream-vhost": "$http_x_target"}
    ),
    "server-alias-close": annotated(
        "alias-close", {NGINX_ANNOTATION + "server-alias": "a.example;" + CLOSE_AND_LOAD}
    ),
    "server-alias-regex": annotated(
        "alias-regex", {NGINX_ANNOTATION + "server-alias": "~^(?<x>.+)$"}
    ),
    "from-to-www-with-payload": annotated(
        "www-payload", {NGINX_ANNOTATION + "from-to-www-redirect": "true; return 200"}
    ),
    "rewrite-target-variable": annotated(
        "rewrite-variable", {NGINX_ANNOTATION + "rewrite-target": "/$request_body"}
    ),
    "rewrite-target-redirect": annotated(
        "rewrite-redirect", {NGINX_ANNOTATION + "rewrite-target": "https://evil.example/$1"}
    ),
    "rewrite-target-close": annotated(
        "rewrite-close",
        {NGINX_ANNOTATION + "rewrite-target": "/$1 break; } location /x { return 200 x; #"},
    ),
    "use-regex-payload": annotated(
        "use-regex", {NGINX_ANNOTATION + "use-regex": "true;\nload_module /e.so;"}
    ),
    "regex-path-escaped-quote": with_field(
        "regex-quote",
        lambda o: (
            o["metadata"].update(annotations={NGINX_ANNOTATION + "use-regex": "true"}),
            first_path(o).update(path='/a\\"; } load_module /e.so; location ~ "/'),
        ),
    ),
    "regex-path-trailing-backslash": with_field(
        "regex-backslash",
        lambda o: (
            o["metadata"].update(annotations={NGINX_ANNOTATION + "rewrite-target": "/$1"}),
            first_path(o).update(path="/(.*)\\"),
        ),
    ),
    "regex-path-newline": with_field(
        "regex-newline",
        lambda o: (
            o["metadata"].update(annotations={NGINX_ANNOTATION + "use-regex": "true"}),
            first_path(o).update(path="/(a)" + NEWLINE_DIRECTIVE),
        ),
    ),
    "regex-path-posix-class": with_field(
        "regex-posix",
        lambda o: (
            o["metadata"].update(annotations={NGINX_ANNOTATION + "use-regex": "true"}),
            first_path(o).update(path="/[[.a.]]", pathType="ImplementationSpecific"),
        ),
    ),
    "regex-path-nested-too-deep": with_field(
        "regex-deep",
        lambda o: (
            o["metadata"].update(annotations={NGINX_ANNOTATION + "use-regex": "true"}),
            first_path(o).update(path="/" + "(" * 300 + "a" + ")" * 300),
        ),
    ),
    "proxy-buffering-payload": annotated(
        "buffering", {NGINX_ANNOTATION + "proxy-buffering": "off; proxy_pass http://evil"}
    ),
    "proxy-buffer-size-payload": annotated(
        "buffer-size", {NGINX_ANNOTATION + "proxy-buffer-size": "4k;\n} load_module /e.so; #"}
    ),
    "proxy-buffer-size-huge": annotated(
        "buffer-huge", {NGINX_ANNOTATION + "proxy-buffer-size": "999999999g"}
    ),
    "proxy-buffers-number-payload": annotated(
        "buffers-number", {NGINX_ANNOTATION + "proxy-buffers-number": "8 8k; root /"}
    ),
    "proxy-http-version-payload": annotated(
        "http-version", {NGINX_ANNOTATION + "proxy-http-version": "1.1;\nssl_engine /e.so;"}
    ),
    "backend-protocol-payload": annotated(
        "backend-protocol",
        {NGINX_ANNOTATION + "backend-protocol": "HTTPS://evil;\n} load_module /e.so; #"},
    ),
    "proxy-next-upstream-payload": annotated(
        "next-upstream",
        {NGINX_ANNOTATION + "proxy-next-upstream": "error;\n} load_module /e.so; #"},
    ),
    "proxy-next-upstream-tries-payload": annotated(
        "next-upstream-tries", {NGINX_ANNOTATION + "proxy-next-upstream-tries": "3; root /"}
    ),
    "proxy-next-upstream-timeout-payload": annotated(
        "next-upstream-timeout", {NGINX_ANNOTATION + "proxy-next-upstream-timeout": "1s;\n#"}
    ),
    "upstream-hash-by-payload": annotated(
        "hash-by", {NGINX_ANNOTATION + "upstream-hash-by": "$request_uri consistent;\n} #"}
    ),
    "upstream-hash-by-any-variable": annotated(
        "hash-by-variable", {NGINX_ANNOTATION + "upstream-hash-by": "$document_root"}
    ),
    "upstream-hash-by-braces": annotated(
        "hash-by-braces", {NGINX_ANNOTATION + "upstream-hash-by": "${request_uri}"}
    ),
    "load-balance-payload": annotated(
        "load-balance", {NGINX_ANNOTATION + "load-balance": "ewma; root /"}
    ),
    "temporal-redirect-variable": annotated(
        "temporal", {NGINX_ANNOTATION + "temporal-redirect": "https://x/$http_cookie"}
    ),
    "permanent-redirect-code-payload": annotated(
        "redirect-code",
        {
            NGINX_ANNOTATION + "permanent-redirect": "/p",
            NGINX_ANNOTATION + "permanent-redirect-code": "301 https://evil; #",
        },
    ),
    "app-root-payload": annotated(
        "app-root", {NGINX_ANNOTATION + "app-root": "/x;\n}\nload_module /e.so;\nserver {"}
    ),
    "f5-snippet": annotated("f5", {"nginx.org/location-snippets": "root /;"}),
    "cve-2022-4886-path-alias": with_field(
        "path-alias",
        lambda o: first_path(o).update(path="/x { alias /var/run/secrets/; } location /y"),
    ),
    "cve-2021-25745-path-secrets": with_field(
        "path-secrets",
        lambda o: first_path(o).update(path="/var/run/secrets/kubernetes.io/../../x"),
    ),
    "path-newline": with_field(
        "path-newline", lambda o: first_path(o).update(path=NEWLINE_DIRECTIVE)
    ),
    "path-quote": with_field("path-quote", lambda o: first_path(o).update(path='/a" ; root / ; "')),
    "path-variable": with_field("path-variable", lambda o: first_path(o).update(path="/$host")),
    "path-encoded": with_field("path-encoded", lambda o: first_path(o).update(path="/%7b%3b")),
    "exact-path-close": with_field(
        "exact-close",
        lambda o: first_path(o).update(path="/a;}" + CLOSE_AND_LOAD, pathType="Exact"),
    ),
    "host-close": with_field(
        "host-close", lambda o: o["spec"]["rules"][0].update(host="a.com;" + CLOSE_AND_LOAD)
    ),
    "host-regex": with_field(
        "host-regex", lambda o: o["spec"]["rules"][0].update(host="~^(?<x>.*)$")
    ),
    "host-wildcard-payload": with_field(
        "host-wildcard", lambda o: o["spec"]["rules"][0].update(host="*.a.com; load_module x")
    ),
    "service-name": with_field(
        "service-name",
        lambda o: first_path(o)["backend"]["service"].update(name="app;" + CLOSE_AND_LOAD),
    ),
    "port-name": with_field(
        "port-name",
        lambda o: first_path(o)["backend"]["service"].update(port={"name": "http;}"}),
    ),
    "port-number-text": with_field(
        "port-number",
        lambda o: first_path(o)["backend"]["service"].update(port={"number": "80; ssl_engine x"}),
    ),
    "namespace": with_field(
        "namespace", lambda o: o["metadata"].update(namespace="default;" + NEWLINE_DIRECTIVE)
    ),
    "name": with_field("name", lambda o: o["metadata"].update(name="x\n} load_module /e.so;")),
    "tls-host": with_field(
        "tls-host",
        lambda o: o["spec"].update(tls=[{"hosts": ["a.com; } load_module x"], "secretName": "s"}]),
    ),
    "tls-secret-name": with_field(
        "tls-secret",
        lambda o: o["spec"].update(
            tls=[{"hosts": ["tls-secret.example.com"], "secretName": "s;" + CLOSE_AND_LOAD}]
        ),
    ),
    "default-backend": with_field(
        "default-backend",
        lambda o: o["spec"].update(
            defaultBackend={"service": {"name": "x { }", "port": {"number": 80}}}
        ),
    ),
    "creation-timestamp": with_field(
        "timestamp", lambda o: o["metadata"].update(creationTimestamp="2020;" + NEWLINE_DIRECTIVE)
    ),
    "cors-origin-close-and-load": annotated(
        "cors-origin",
        {
            NGINX_ANNOTATION + "enable-cors": "true",
            NGINX_ANNOTATION + "cors-allow-origin": 'https://a.example)$") {' + CLOSE_AND_LOAD,
        },
    ),
    "cors-origin-regex": annotated(
        "cors-regex",
        {
            NGINX_ANNOTATION + "enable-cors": "true",
            NGINX_ANNOTATION + "cors-allow-origin": "https://(.*)",
        },
    ),
    "cors-methods-newline": annotated(
        "cors-methods",
        {
            NGINX_ANNOTATION + "enable-cors": "true",
            NGINX_ANNOTATION + "cors-allow-methods": "GET" + NEWLINE_DIRECTIVE,
        },
    ),
    "cors-headers-variable": annotated(
        "cors-headers",
        {
            NGINX_ANNOTATION + "enable-cors": "true",
            NGINX_ANNOTATION + "cors-allow-headers": "X-A, $http_authorization",
        },
    ),
    "cors-expose-quote": annotated(
        "cors-expose",
        {
            NGINX_ANNOTATION + "enable-cors": "true",
            NGINX_ANNOTATION + "cors-expose-headers": 'X" always; add_header Y "',
        },
    ),
    "auth-url-variable": annotated(
        "auth-variable", {NGINX_ANNOTATION + "auth-url": "http://$host/auth?x=$request_body"}
    ),
    "auth-url-close-and-load": annotated(
        "auth-close", {NGINX_ANNOTATION + "auth-url": "http://127.0.0.1/x" + CLOSE_AND_LOAD}
    ),
    "auth-url-service-close-and-load": annotated(
        "auth-service-close",
        {NGINX_ANNOTATION + "auth-url": "http://oauth2.auth.svc:4180/x" + CLOSE_AND_LOAD},
    ),
    "auth-url-service-bad-name": annotated(
        "auth-service-name", {NGINX_ANNOTATION + "auth-url": "http://9oauth2.auth.svc/verify"}
    ),
    "auth-url-service-variable": annotated(
        "auth-service-variable",
        {NGINX_ANNOTATION + "auth-url": "http://oauth2.auth.svc/$request_uri"},
    ),
    "auth-signin-service": annotated(
        "auth-signin-service",
        {
            NGINX_ANNOTATION + "auth-url": "http://oauth2.auth.svc/verify",
            NGINX_ANNOTATION + "auth-signin": "http://oauth2.auth.svc/start",
        },
    ),
    "auth-signin-newline": annotated(
        "auth-signin",
        {
            NGINX_ANNOTATION + "auth-url": "http://127.0.0.1:9/verify",
            NGINX_ANNOTATION + "auth-signin": "https://a.example/" + NEWLINE_DIRECTIVE,
        },
    ),
    "auth-url-host-userinfo": annotated(
        "auth-host-userinfo",
        {NGINX_ANNOTATION + "auth-url": "https://$host:443@evil.example/oauth2/auth"},
    ),
    "auth-url-host-newline": annotated(
        "auth-host-newline", {NGINX_ANNOTATION + "auth-url": "https://$host/" + NEWLINE_DIRECTIVE}
    ),
    "auth-signin-unlisted-variable": annotated(
        "auth-signin-variable",
        {
            NGINX_ANNOTATION + "auth-url": "https://$host/oauth2/auth",
            NGINX_ANNOTATION + "auth-signin": "https://$host/start?rd=$http_x_next",
        },
    ),
    "auth-signin-variable-newline": annotated(
        "auth-signin-variable-newline",
        {
            NGINX_ANNOTATION + "auth-url": "https://$host/oauth2/auth",
            NGINX_ANNOTATION + "auth-signin": "https://$host/?rd=$request_uri" + NEWLINE_DIRECTIVE,
        },
    ),
    "auth-response-headers-directive": annotated(
        "auth-headers",
        {
            NGINX_ANNOTATION + "auth-url": "http://127.0.0.1:9/verify",
            NGINX_ANNOTATION + "auth-response-headers": "X-A $x; load_module /e.so",
        },
    ),
    "auth-method-payload": annotated(
        "auth-method",
        {
            NGINX_ANNOTATION + "auth-url": "http://127.0.0.1:9/verify",
            NGINX_ANNOTATION + "auth-method": "GET;" + CLOSE_AND_LOAD,
        },
    ),
    "auth-request-redirect-quote": annotated(
        "auth-redirect",
        {
            NGINX_ANNOTATION + "auth-url": "http://127.0.0.1:9/verify",
            NGINX_ANNOTATION + "auth-request-redirect": '/x"; ssl_engine /e.so; #',
        },
    ),
    "auth-redirect-param-payload": annotated(
        "auth-param",
        {
            NGINX_ANNOTATION + "auth-url": "http://127.0.0.1:9/verify",
            NGINX_ANNOTATION + "auth-signin": "https://a.example/",
            NGINX_ANNOTATION + "auth-signin-redirect-param": "rd=$request_uri;",
        },
    ),
    "limit-rps-close-and-load": annotated(
        "limit-rps", {NGINX_ANNOTATION + "limit-rps": "5 burst=1;" + CLOSE_AND_LOAD}
    ),
    "limit-rpm-unit": annotated("limit-rpm", {NGINX_ANNOTATION + "limit-rpm": "5r/s"}),
    "limit-connections-newline": annotated(
        "limit-conn", {NGINX_ANNOTATION + "limit-connections": "1" + NEWLINE_DIRECTIVE}
    ),
    "limit-rate-size": annotated(
        "limit-rate", {NGINX_ANNOTATION + "limit-rate": "1k; limit_rate_after 0"}
    ),
    "limit-allowlist-geo-close": annotated(
        "limit-allow",
        {
            NGINX_ANNOTATION + "limit-rpm": "1",
            NGINX_ANNOTATION + "limit-allowlist": "10.0.0.0/8 1;\n}\nssl_engine /e.so;\n#",
        },
    ),
    "auth-realm-quote": annotated(
        "auth-realm",
        {
            NGINX_ANNOTATION + "auth-type": "basic",
            NGINX_ANNOTATION + "auth-secret": "users",
            NGINX_ANNOTATION + "auth-realm": 'x";' + CLOSE_AND_LOAD,
        },
    ),
    "auth-secret-traversal": annotated(
        "auth-secret",
        {
            NGINX_ANNOTATION + "auth-type": "basic",
            NGINX_ANNOTATION + "auth-secret": "../../etc/passwd",
        },
    ),
    "auth-type-payload": annotated(
        "auth-type",
        {
            NGINX_ANNOTATION + "auth-type": "basic;" + CLOSE_AND_LOAD,
            NGINX_ANNOTATION + "auth-secret": "users",
        },
    ),
    "auth-secret-type-newline": annotated(
        "auth-secret-type",
        {
            NGINX_ANNOTATION + "auth-type": "basic",
            NGINX_ANNOTATION + "auth-secret": "users",
            NGINX_ANNOTATION + "auth-secret-type": "auth-file" + NEWLINE_DIRECTIVE,
        },
    ),
    "auth-tls-match-cn-close": annotated(
        "auth-tls-match-cn",
        {
            NGINX_ANNOTATION + "auth-tls-secret": "ca",
            NGINX_ANNOTATION + "auth-tls-match-cn": 'CN=a") { return 200; }' + CLOSE_AND_LOAD,
        },
    ),
    "auth-tls-verify-client-payload": annotated(
        "auth-tls-verify",
        {
            NGINX_ANNOTATION + "auth-tls-secret": "ca",
            NGINX_ANNOTATION + "auth-tls-verify-client": "off;" + CLOSE_AND_LOAD,
        },
    ),
    "auth-tls-error-page-newline": annotated(
        "auth-tls-error-page",
        {
            NGINX_ANNOTATION + "auth-tls-secret": "ca",
            NGINX_ANNOTATION + "auth-tls-error-page": "https://a.example/" + NEWLINE_DIRECTIVE,
        },
    ),
    "cors-max-age-payload": annotated(
        "cors-max-age",
        {
            NGINX_ANNOTATION + "enable-cors": "true",
            NGINX_ANNOTATION + "cors-max-age": "1;" + CLOSE_AND_LOAD,
        },
    ),
    "proxy-redirect-close": annotated(
        "redirect-close",
        {
            NGINX_ANNOTATION + "proxy-redirect-from": "http://a.example/",
            NGINX_ANNOTATION + "proxy-redirect-to": "/" + CLOSE_AND_LOAD,
        },
    ),
    "proxy-redirect-variable": annotated(
        "redirect-variable", {NGINX_ANNOTATION + "proxy-redirect-from": "$scheme://a/ /"}
    ),
    "proxy-cookie-domain-newline": annotated(
        "cookie-domain", {NGINX_ANNOTATION + "proxy-cookie-domain": "a b" + NEWLINE_DIRECTIVE}
    ),
    "preserve-trailing-slash-payload": annotated(
        "slash-payload",
        {
            NGINX_ANNOTATION + "force-ssl-redirect": "true",
            NGINX_ANNOTATION + "preserve-trailing-slash": "false" + NEWLINE_DIRECTIVE,
        },
    ),
    "proxy-ssl-secret-traversal": annotated(
        "proxy-ssl-secret",
        {
            NGINX_ANNOTATION + "backend-protocol": "HTTPS",
            NGINX_ANNOTATION + "proxy-ssl-secret": "../../etc/ssl/private",
        },
    ),
    "proxy-ssl-name-variable": annotated(
        "proxy-ssl-name",
        {
            NGINX_ANNOTATION + "backend-protocol": "HTTPS",
            NGINX_ANNOTATION + "proxy-ssl-secret": "backend-ca",
            NGINX_ANNOTATION + "proxy-ssl-name": "$http_x_name;" + CLOSE_AND_LOAD,
        },
    ),
    "proxy-ssl-ciphers-close": annotated(
        "proxy-ssl-ciphers",
        {
            NGINX_ANNOTATION + "backend-protocol": "GRPCS",
            NGINX_ANNOTATION + "proxy-ssl-secret": "backend-ca",
            NGINX_ANNOTATION + "proxy-ssl-ciphers": "HIGH;" + CLOSE_AND_LOAD,
        },
    ),
    "proxy-ssl-protocols-newline": annotated(
        "proxy-ssl-protocols",
        {
            NGINX_ANNOTATION + "backend-protocol": "HTTPS",
            NGINX_ANNOTATION + "proxy-ssl-secret": "backend-ca",
            NGINX_ANNOTATION + "proxy-ssl-protocols": "TLSv1.2" + NEWLINE_DIRECTIVE,
        },
    ),
    "proxy-ssl-verify-payload": annotated(
        "proxy-ssl-verify",
        {
            NGINX_ANNOTATION + "backend-protocol": "HTTPS",
            NGINX_ANNOTATION + "proxy-ssl-secret": "backend-ca",
            NGINX_ANNOTATION + "proxy-ssl-verify": "on;" + CLOSE_AND_LOAD,
        },
    ),
    "ssl-ciphers-close": annotated(
        "ssl-ciphers", {NGINX_ANNOTATION + "ssl-ciphers": "HIGH:!aNULL;" + CLOSE_AND_LOAD}
    ),
    "ssl-ciphers-engine-command": annotated(
        "ssl-ciphers-engine", {NGINX_ANNOTATION + "ssl-ciphers": "HIGH@SECLEVEL=0 x\nssl_engine"}
    ),
    "ssl-prefer-server-ciphers-payload": annotated(
        "ssl-prefer",
        {NGINX_ANNOTATION + "ssl-prefer-server-ciphers": "true" + NEWLINE_DIRECTIVE},
    ),
    "proxy-cookie-path-regex": annotated(
        "cookie-path", {NGINX_ANNOTATION + "proxy-cookie-path": "~^/(.*)$ /$1;" + CLOSE_AND_LOAD}
    ),
}


@pytest.fixture(scope="module")
def good_pair():
    return cli.self_signed("good.example.com", ("good.example.com",))


def hostile_world(address: str, port: int, good_pair) -> model.Inputs:
    """All hostile objects, plus a good Ingress and objects it uses that carry payloads
    in the places that are not the Ingress itself (Service, EndpointSlice, Secret)."""
    inputs = model.Inputs(
        ingresses=[copy.deepcopy(obj) for obj in HOSTILE_INGRESSES.values()],
        services=[service("app"), service("bad-port", {"http;}": 80})],
        endpoint_slices=[
            endpoint_slice("app", [(address, True)], port),
            endpoint_slice("bad-port", [("10.0.0.1;} load_module x;", True)], 80),
        ],
    )
    good = tls_secret("good-tls", good_pair)
    # A PEM file with configuration text around and inside its blocks: the certificate
    # is parsed and re-serialised, so none of the text survives.
    poisoned = tls_secret("poisoned", good_pair)
    poisoned["data"]["tls.crt"] = base64.b64encode(
        b"} load_module /e.so;\n" + good_pair.certificate_pem + b"\nssl_engine x;\n"
    ).decode()
    inputs.secrets.extend([good, poisoned])
    inputs.ingresses.append(
        ingress(
            "good",
            rule("good.example.com", path("/", "app"), path("/bad-port", "bad-port")),
            rule("poisoned.example.com", path("/", "app")),
            tls=[
                {"hosts": ["good.example.com"], "secretName": "good-tls"},
                {"hosts": ["poisoned.example.com"], "secretName": "poisoned"},
            ],
        )
    )
    return inputs


@pytest.mark.parametrize("case", sorted(HOSTILE_INGRESSES))
def test_each_hostile_ingress_is_skipped_with_a_reason(case):
    hostile = copy.deepcopy(HOSTILE_INGRESSES[case])
    built = model.build(model.Inputs(ingresses=[hostile]), model.Options())
    assert built.served_ingresses == ()
    assert built.servers == ()
    assert {problem.code for problem in built.problems} <= {"invalid", "unsupported"}
    assert built.problems
    for problem in built.problems:
        assert problem.kind == "Ingress"
        assert "\n" not in problem.reason and len(problem.reason) < 700
        for word in ("load_module /e.so", "ssl_engine /"):
            assert word not in problem.name + problem.namespace


@pytest.fixture(scope="module", params=["static", "dynamic"])
def hostile_site(request, tmp_path_factory, good_pair):
    backends, runner = Backends(), NginxRunner()
    try:
        app = backends.start("app")
        site = render_site(
            tmp_path_factory.mktemp("hostile"),
            hostile_world(app.host, app.port, good_pair),
            dynamic_mode=request.param == "dynamic",
        )
        runner.start(site)
        yield site
    finally:
        runner.stop_all()
        backends.stop_all()


def test_everything_else_keeps_serving(hostile_site):
    assert hostile_site.model.served_ingresses == (("default", "good"),)
    answer = request(hostile_site.ports.https, "good.example.com", "/x", tls=True)
    assert (answer.status, answer.backend) == (200, "app")
    assert request(hostile_site.ports.http, "good.example.com", "/x").status == 308  # TLS host
    bad_port = request(hostile_site.ports.https, "good.example.com", "/bad-port", tls=True)
    assert bad_port.status == 503
    tls = request(hostile_site.ports.https, "poisoned.example.com", tls=True)
    assert (tls.status, tls.backend) == (200, "app")


def test_every_hostile_object_is_reported(hostile_site):
    reported = {(p.kind, p.namespace, p.name) for p in hostile_site.model.problems}
    for obj in HOSTILE_INGRESSES.values():
        assert ("Ingress", *model.identity(obj)) in reported
    assert ("Service", "default", "bad-port") in reported
    # The good Ingress is told why its path to the broken Service answers 503.
    (good,) = [p for p in hostile_site.model.problems if p.name == "good"]
    assert good.reason == "Service default/bad-port is invalid; its paths answer 503"


def test_nginx_accepts_the_configuration(hostile_site):
    tested = nginx_test(hostile_site.directory)
    assert tested.returncode == 0, tested.stderr


def test_no_injected_directive_reaches_nginx(hostile_site):
    found = assert_only_rendered_directives(hostile_site.directory / "nginx.conf")
    # Directive names are checked against the allowlist above (the dynamic mode's own
    # load_module and content_by_lua_block among them); injected text would be in values.
    text = " ".join(" ".join(args) for _, args, _ in found)
    for word in INJECTED:
        assert word not in text
    for relative, data in hostile_site.rendered.files.items():
        assert b"load_module" not in data and b"ssl_engine" not in data, relative


def ports_without_443() -> Ports:
    """Free ports none of which has "443" in it: gixy's hsts_header check takes any listen
    that does (a random 14430, say) for TLS, so the scan would depend on the draw."""
    while True:
        ports = Ports.free()
        if "443" not in f"{ports.http} {ports.https} {ports.status}":
            return ports


def scanned_by_gixy(
    directory: Path, golden_input: Path, mode: str, options: model.Options | None = None
):
    """A golden case rendered into `directory` in `mode` (static or dynamic), which nginx
    accepts: (the site, gixy-ng's run, its findings)."""
    inputs, _ = manifests.load([golden_input])
    site = render_site(
        directory, inputs, options, ports=ports_without_443(), dynamic_mode=mode == "dynamic"
    )
    assert nginx_test(directory).returncode == 0
    scan = subprocess.run(
        [GIXY, "--format", "json", str(directory / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return site, scan, json.loads(scan.stdout)


@pytest.mark.parametrize(
    "case",
    [GOLDEN_SEMANTICS, GOLDEN_ACCESS, GOLDEN_SECRETS, GOLDEN_BACKEND_TLS],
    ids=["semantics", "access", "secrets", "backend-tls"],
)
@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_gixy_finds_nothing(tmp_path, mode, case):
    """gixy-ng, the nginx security scanner, on a rendered configuration that uses every
    feature (TLS hosts, redirects, wildcards, rules without host, catch-all, the access
    annotations)."""
    site, scan, findings = scanned_by_gixy(tmp_path, case, mode)
    assert scan.returncode == 0, scan.stdout + scan.stderr
    assert findings == []
    assert site.model.servers  # the scan saw real servers


def test_values_at_their_grammar_limits_are_accepted_by_nginx(tmp_path, good_pair):
    """The longest host, path, names and Secret name the grammar allows still make a
    configuration nginx accepts (bucket sizes, token lengths, file names)."""
    label = "a" * 63
    long_host = ".".join([label, label, label, "b" * 61])
    long_name = ".".join(["n" * 63] * 3 + ["m" * 61])
    namespace, service_name = "s" * 63, "w" * 63
    inputs = model.Inputs(
        ingresses=[
            ingress(
                long_name,
                rule(long_host, path("/" + "p" * 2047, service_name, 65535)),
                rule("*." + ".".join([label, label, "c" * 61]), path("/", service_name, "h" * 15)),
                namespace=namespace,
                tls=[{"hosts": [long_host], "secretName": long_name}],
                annotations={
                    NGINX_ANNOTATION + "proxy-read-timeout": str(grammar.SECONDS_MAX),
                    NGINX_ANNOTATION + "proxy-body-size": "999999999g",
                    NGINX_ANNOTATION + "proxy-buffer-size": "1m",
                    NGINX_ANNOTATION + "proxy-buffers-number": str(grammar.BUFFERS_NUMBER_MAX),
                    NGINX_ANNOTATION + "proxy-buffering": "off",
                    NGINX_ANNOTATION + "proxy-request-buffering": "off",
                    NGINX_ANNOTATION + "proxy-http-version": "1.0",
                    NGINX_ANNOTATION + "proxy-next-upstream": " ".join(retry.CONDITIONS),
                    NGINX_ANNOTATION + "proxy-next-upstream-tries": str(retry.TRIES_MAX),
                    NGINX_ANNOTATION + "proxy-next-upstream-timeout": str(grammar.SECONDS_MAX),
                    NGINX_ANNOTATION + "upstream-hash-by": (
                        "$binary_remote_addr" * (balance.HASH_KEY_MAX_LENGTH // 19)
                    ),
                    NGINX_ANNOTATION + "allowlist-source-range": ",".join(
                        f"10.{i // 256}.{i % 256}.0/24" for i in range(grammar.SOURCE_RANGES_MAX)
                    ),
                    NGINX_ANNOTATION + "denylist-source-range": (
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128, ::/0"
                    ),
                },
            )
        ],
        services=[service(service_name, {"h" * 15: 65535}, namespace=namespace)],
        endpoint_slices=[
            endpoint_slice(
                service_name,
                [("255.255.255.254", True)],
                65535,
                port_name="h" * 15,
                namespace=namespace,
            )
        ],
        secrets=[tls_secret(long_name, good_pair, namespace=namespace)],
    )
    # Regexes at the edges of what the grammar lets through: PCRE must take them all.
    regexes = [
        "/" + "(" * grammar.REGEX_DEPTH_MAX + "a" + ")" * grammar.REGEX_DEPTH_MAX,
        f"/a{{1,{grammar.REGEX_REPEAT_MAX}}}(/|$)(.*)",
        "/[]a][^]b]\\.\\-\\/\\d\\D\\w\\W\\s\\S\\(\\)\\[\\]\\{\\}\\*\\+\\?\\|\\^\\$",
        "/(?:x|y)*+z?+{}{,}$^",
        "/" + "b" * (grammar.PATH_MAX_LENGTH - 1),
    ]
    inputs.ingresses.append(
        ingress(
            "regexes",
            rule("regex.example.com", *(path(regex, service_name, 65535) for regex in regexes)),
            namespace=namespace,
            annotations={NGINX_ANNOTATION + "rewrite-target": "/$9$1/" + "c" * 2000},
        )
    )
    assert len(long_host) == len(long_name) == 253
    site = render_site(tmp_path, inputs)
    assert site.model.problems == ()
    assert len(site.model.servers) == 3
    tested = nginx_test(tmp_path)
    assert tested.returncode == 0, tested.stderr
    assert_only_rendered_directives(tmp_path / "nginx.conf")
