"""`edgeagent check --nginx`: nginx -t on the candidate, and the host servers the agent
would quarantine (quarantine.py) with the objects that would be told.

The candidate is rendered and staged into a scratch directory laid out as the agent's
(`gen-<hash>`, `current` pointing at it, a main configuration that includes
`current/edge.conf`), so that `apply.Applier` validates it and, when nginx refuses it,
finds the refused host servers by the same bisection the agent runs. `quarantine.withhold`
then makes the Problems the agent would report (one per Ingress with a rule for the host).
The main configuration is `edgeagent render`'s standalone one, not the edge node's: what
differs there (its TLS settings, modules) is not tested here. `nginx -t` binds no socket,
so the listen addresses are the edge node's defaults.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from edgeagent import quarantine, render
from edgeagent.annotations import extauth
from edgeagent.apply import CURRENT, Applier, ApplyError, ApplySettings
from edgeagent.files import write_atomically
from edgeagent.grammar import CertPair
from edgeagent.model import Model, Problem

LISTEN_HTTP = "0.0.0.0:80"
LISTEN_HTTPS = "0.0.0.0:443"


@dataclass(frozen=True)
class Verdict:
    quarantined: tuple[Problem, ...] = ()
    """One per Ingress with a rule for a host whose server nginx -t refuses on its own."""
    refused: str = ""
    """nginx's first line when it refuses the candidate and no one server is at fault (the
    agent then keeps serving the last good configuration); empty otherwise."""


def _first_line(error: ApplyError) -> str:
    return (str(error).splitlines() or ["refused"])[0]


def check(built: Model, ingresses: Iterable[dict], nginx: str, default: CertPair) -> Verdict:
    """nginx -t (the binary `nginx`) on `built`, rendered with `default` as the default
    certificate; OSError when `nginx` is no executable."""
    if shutil.which(nginx) is None:
        raise FileNotFoundError(f"{nginx}: not an executable")
    with tempfile.TemporaryDirectory(prefix="edgeagent-check-") as scratch:
        root = pathlib.Path(scratch)
        certificate = root / "default.pem"
        write_atomically(certificate, default.certificate_pem + default.key_pem, 0o600)
        layout = render.Layout(
            listen_http=LISTEN_HTTP,
            listen_https=LISTEN_HTTPS,
            output_dir=f"{root}/gen-{render.GENERATION_PLACEHOLDER}",
            default_certificate=str(certificate),
            default_key=str(certificate),
        )
        main = root / "nginx.conf"
        standalone = render.Layout(
            LISTEN_HTTP, LISTEN_HTTPS, str(root / CURRENT), str(certificate), str(certificate)
        )
        main.write_bytes(
            render.render_main(
                standalone, built.annotations.enable_ssl_passthrough, extauth.escapes_uri(built)
            )
        )
        applier = Applier(ApplySettings(nginx_dir=scratch, main_conf=str(main), nginx_binary=nginx))
        rendered = render.render(built, layout)
        target = applier.stage(rendered)
        os.symlink(target.name, root / CURRENT)
        try:
            applier.validate(target)
            return Verdict()
        except ApplyError as error:
            whole = _first_line(error)
        offenders = applier.offenders(rendered, target, None)
        if not offenders:
            return Verdict(refused=whole)
        refused = {}
        for block_id in offenders:
            try:  # each with nginx's own words for it, not the first offender's
                applier.validate(target, applier.delta_config(rendered, [block_id]))
                reason = whole
            except ApplyError as error:
                reason = _first_line(error)
            refused[quarantine.host_of(block_id)] = reason
        withheld = quarantine.withhold(built, refused, None, ingresses)
        return Verdict(quarantined=withheld.problems[len(built.problems) :])
