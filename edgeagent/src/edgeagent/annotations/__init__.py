"""ingress-nginx annotations: one parser per family, registered in `FAMILIES`.

A family is a module with `KEYS` (the keys it reads, without the prefix) and
`parse(reader, config) -> dict` (the `model.LocationSettings` fields it feeds); a new
annotation is a new module, or a key in one, plus its tests. Every other key under the
prefix is looked up in `catalogue`: refused (snippets, what protects, what changes the
answer), served without and reported (tuning), or, unknown to ingress-nginx itself,
ignored with a warning as ingress-nginx ignored it. `parse` returns every finding at
once, so `edgeagent check` and the Events name every problem of an Ingress.
"""

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from edgeagent import grammar
from edgeagent.annotations import (
    affinity,
    backend,
    balance,
    basicauth,
    buffering,
    canary,
    catalogue,
    clientcert,
    cors,
    customheaders,
    errorpages,
    extauth,
    mirror,
    passthrough,
    proxy,
    proxy_rewrites,
    proxyssl,
    ratelimit,
    redirect,
    retry,
    rewrite,
    server_names,
    sourcerange,
    sslciphers,
    trailing_slash,
    upstream_headers,
)
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Finding, Reader
from edgeagent.grammar import Invalid

__all__ = ["FAMILIES", "SECRET_KEYS", "SUPPORTED", "Config", "Finding", "Parsed", "parse"]

FAMILIES = (
    redirect,
    rewrite,
    backend,
    proxy,
    buffering,
    sourcerange,
    upstream_headers,
    server_names,
    retry,
    balance,
    canary,
    affinity,
    cors,
    ratelimit,
    extauth,
    basicauth,
    clientcert,
    proxy_rewrites,
    trailing_slash,
    proxyssl,
    sslciphers,
    errorpages,
    mirror,
    customheaders,
    passthrough,
)
SUPPORTED = frozenset(key for family in FAMILIES for key in family.KEYS)
SECRET_KEYS = (basicauth.SECRET, clientcert.SECRET, proxyssl.SECRET)
"""The keys that name a Secret (`NAME` or `NAMESPACE/NAME`), whose content the agent reads."""
CONFIG_MAP_KEYS = (customheaders.CONFIG_MAP,)
"""The keys that name a ConfigMap (`NAME` or `NAMESPACE/NAME`), whose data the agent reads."""


@dataclass(frozen=True)
class Parsed:
    settings: Mapping[str, Any]
    """`model.LocationSettings` fields, complete when no finding is refused."""
    findings: tuple[Finding, ...]
    """One per annotation under the prefix or a foreign controller's, in key order."""

    @property
    def refused(self) -> bool:
        return any(finding.status == "refused" for finding in self.findings)


def parse(annotations: Mapping[object, object], config: Config) -> Parsed:
    """Read an Ingress's annotations. Raises `Invalid` only when they are not a mapping of
    strings to strings, which the API server never sends."""
    if not all(isinstance(key, str) for key in annotations):
        raise Invalid("metadata.annotations keys must be strings")
    prefix = config.annotations_prefix + "/"
    ours: dict[str, str] = {}
    findings: dict[str, Finding] = {}
    for key in sorted(annotations):
        value = grammar.string(annotations[key], f"annotation {grammar.show(key)}")
        if key.startswith(prefix):
            ours[key[len(prefix) :]] = value
        elif key.startswith(catalogue.FOREIGN_PREFIXES):
            why = catalogue.SNIPPET if "snippet" in key else catalogue.FOREIGN
            reason = f"annotation {key} {grammar.show(value)} is refused: {why}"
            findings[key] = Finding(key, value, "refused", "unsupported", reason)
    if not ours and not findings:
        return _unannotated(config)
    reader = Reader(prefix, ours)
    settings = _settings(reader, config)
    for short, value in ours.items():
        full = prefix + short
        if short in reader.findings:
            findings[full] = reader.findings[short]
        elif short in catalogue.SWITCHES and value.lower() in ("false", "0", "f"):
            reason = f"annotation {full} {grammar.show(value)} is ignored: off, as without it"
            findings[full] = Finding(full, value, "ignored", "warning", reason)
        elif short in catalogue.REFUSED:
            why = catalogue.REFUSED[short]
            reason = f"annotation {full} {grammar.show(value)} is refused: {why}"
            findings[full] = Finding(full, value, "refused", "unsupported", reason)
        elif short in catalogue.TUNED:
            reason = f"annotation {full} {grammar.show(value)} is ignored: {catalogue.TUNING}"
            findings[full] = Finding(full, value, "ignored", "warning", reason)
        else:
            reason = f"annotation {full} {grammar.show(value)} is ignored: {catalogue.UNDEFINED}"
            findings[full] = Finding(full, value, "ignored", "warning", reason)
    if settings["canary"] is not None:
        findings = canary.on_canary(findings, prefix)
    return Parsed(settings, tuple(findings[key] for key in sorted(findings)))


def _settings(reader: Reader, config: Config) -> Mapping[str, Any]:
    settings: dict[str, Any] = {}
    for family in FAMILIES:
        settings.update(family.parse(reader, config))
    return MappingProxyType(settings)


@functools.lru_cache(maxsize=16)
def _unannotated(config: Config) -> Parsed:
    """What an Ingress without our annotations gets: most Ingresses, parsed once."""
    return Parsed(_settings(Reader("", {}), config), ())
