"""Every annotation ingress-nginx defines that edgeagent does not serve yet, and what
becomes of an Ingress that carries one.

Taken from ingress-nginx's internal/ingress/annotations/*/main.go (the keys its parsers
read) and docs/user-guide/nginx-configuration/annotations.md. The rule (docs/routing.md):
never serve an Ingress less protected, or answering otherwise, than its author asked;
what only tunes is served without and reported as a warning.
"""

SNIPPET = (
    "snippets put raw text into the nginx configuration (the IngressNightmare class of "
    "attacks); edgeagent never copies them"
)
PROTECTION = (
    "not supported yet, and serving the Ingress without it would protect it less than "
    "its author asked"
)
BEHAVIOUR = (
    "not supported yet, and serving the Ingress without it would answer otherwise than "
    "its author asked"
)
TUNING = "not supported; it only tunes, so the Ingress is served without it"

REFUSED: dict[str, str] = {
    **dict.fromkeys(
        (
            "configuration-snippet",
            "server-snippet",
            "auth-snippet",
            "modsecurity-snippet",
            "stream-snippet",
        ),
        SNIPPET,
    ),
    **dict.fromkeys(
        (
            # authentication, external
            "auth-proxy-set-headers",
            "auth-always-set-cookie",
            "satisfy",
            # web application firewall
            "enable-modsecurity",
            "enable-owasp-core-rules",
            "modsecurity-transaction-id",
        ),
        PROTECTION,
    ),
    **dict.fromkeys(
        (
            "upstream-hash-by-subset",
            "upstream-hash-by-subset-size",
            "fastcgi-index",
            "fastcgi-params-configmap",
        ),
        BEHAVIOUR,
    ),
}

# The edge runs outside the cluster (docs/architecture.md).
SERVICE_UPSTREAM = (
    "proxying to the Service's ClusterIP needs a route into the cluster's Service network, "
    "which the edge outside the cluster does not have; it proxies to the Service's "
    "endpoints (with --backend-mode nodeport, to its node ports, which kube-proxy balances "
    "as it balances the ClusterIP)"
)
REFUSED["service-upstream"] = SERVICE_UPSTREAM

TUNED: dict[str, str] = dict.fromkeys(
    (
        "connection-proxy-header",
        "http2-push-preload",
        "use-port-in-redirects",
        "relative-redirects",
        "enable-access-log",
        "enable-rewrite-log",
        "enable-opentelemetry",
        "opentelemetry-trust-incoming-span",
        "opentelemetry-operation-name",
        # edgeagent has no global external authentication to opt out of
        "enable-global-auth",
    ),
    TUNING,
)

# Switches whose "false" asks for exactly what serving without them gives.
SWITCHES = frozenset(
    (
        "enable-modsecurity",
        "enable-owasp-core-rules",
        "service-upstream",
    )
)

UNDEFINED = "ingress-nginx defines no such annotation and ignored it; so does edgeagent"
# Other nginx controllers' prefixes (F5 NGINX Ingress Controller): edgeagent reads none
# of their annotations, which may protect what they name.
FOREIGN_PREFIXES = ("nginx.org/", "nginx.com/")
FOREIGN = (
    "another controller's annotation; refusing to serve the Ingress without the "
    "behaviour it asks for"
)
