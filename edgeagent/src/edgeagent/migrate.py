"""`edgeagent migrate`: what the edge would make of an ingress-nginx cluster, before it
serves anything.

Per Ingress of the class asked for: served as is, served with warnings, or refused, with
the status of each of its annotations and every other problem. The verdicts are the
agent's own: the annotations go through `edgeagent.annotations.parse` and the Ingresses
through `model.build`, as on an edge node. Services are not judged (`edgeagent check`
with the Services' manifests, or the agent's Events, do that): a migration report made
from the Ingress manifests alone would otherwise call every backend missing.

The ingress-nginx ConfigMap's global settings map to the role variables that give the
edge the same defaults: each is an `annotations.Config` field, whose flag is named as
the ConfigMap key it stands for, and whose role variable `settings.role_variable` names.

Pure: objects in, a report out; cli.py reads the files or the cluster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgeagent import annotations, grammar, settings
from edgeagent.annotations import Finding
from edgeagent.grammar import Invalid
from edgeagent.model import Inputs, Options, Problem, build, identity, ingresses_of_class

SERVED, WARNINGS, REFUSED = "served", "served-with-warnings", "refused"
# What the report leaves to `check` (see the module docstring).
NOT_JUDGED = frozenset({"missing-service"})
# ingress-nginx takes them as flags (--annotations-prefix, --default-backend-service), never
# from its ConfigMap.
NOT_IN_CONFIGMAP = frozenset({"annotations-prefix", "default-backend-service"})
NO_ROLE_VARIABLE = "edgeagent has no setting for it; the edge runs without it"


@dataclass(frozen=True)
class IngressReport:
    namespace: str
    name: str
    verdict: str
    annotations: tuple[Finding, ...]
    """Every annotation under the prefix (and any other controller's), in key order."""
    problems: tuple[str, ...]
    """Every other problem: the spec, the apiVersion's conversion, conflicts."""


@dataclass(frozen=True)
class ConfigMapReport:
    role_variables: Mapping[str, Any]
    """Role variable -> value, for each ConfigMap key the edge reproduces."""
    not_reproduced: tuple[tuple[str, str, str], ...]
    """(key, value, reason) of every other key."""


def ingresses(
    inputs: Inputs, options: Options, load_problems: list[Problem]
) -> list[IngressReport]:
    """A report per Ingress of `options`' class, by namespace and name."""
    model = build(inputs, options)
    served = set(model.served_ingresses)
    problems_of: dict[tuple[str, str], list[Problem]] = {}
    for problem in (*load_problems, *model.problems):
        if problem.kind == "Ingress" and problem.code not in NOT_JUDGED:
            problems_of.setdefault((problem.namespace, problem.name), []).append(problem)
    reports = []
    for obj in ingresses_of_class(inputs, options):
        key = identity(obj)
        findings = _findings(obj, options.annotations)
        reasons = {finding.reason for finding in findings}
        problems = tuple(
            dict.fromkeys(p.reason for p in problems_of.get(key, ()) if p.reason not in reasons)
        )
        if key not in served:
            verdict = REFUSED
        elif problems or any(finding.status != "supported" for finding in findings):
            verdict = WARNINGS
        else:
            verdict = SERVED
        reports.append(IngressReport(*key, verdict, findings, problems))
    return sorted(reports, key=lambda report: (report.namespace, report.name))


def _findings(obj: dict, config: annotations.Config) -> tuple[Finding, ...]:
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    given = metadata.get("annotations")
    if not isinstance(given, dict):
        return ()  # model.build reports the malformed mapping among the problems
    try:
        return annotations.parse(given, config).findings
    except Invalid:
        return ()


def configmap(data: Mapping[str, object]) -> ConfigMapReport:
    """The role variables that reproduce an ingress-nginx ConfigMap's `data`."""
    fields = {
        each.metadata["flag"]: each
        for group, each in settings.OPTIONS
        if group == "annotations" and each.metadata["flag"] not in NOT_IN_CONFIGMAP
    }
    role_variables: dict[str, Any] = {}
    not_reproduced = []
    for key in sorted(data):
        value = data[key]
        text = value if isinstance(value, str) else str(value)
        if key not in fields:
            not_reproduced.append((key, text, NO_ROLE_VARIABLE))
            continue
        try:
            role_variables[settings.role_variable(key)] = _setting(fields[key], text)
        except Invalid as error:
            not_reproduced.append((key, text, f"invalid: {error}"))
    return ConfigMapReport(role_variables, tuple(not_reproduced))


def _setting(each: dataclasses.Field, text: str) -> Any:
    # ingress-nginx reads a ConfigMap boolean as Go does ("true", "1", "T", ...).
    raw: Any = (
        grammar.go_boolean(text, each.metadata["flag"]) if isinstance(each.default, bool) else text
    )
    return each.metadata["parse"](raw)


def as_json(reports: list[IngressReport], configmap_report: ConfigMapReport | None) -> dict:
    """The shape scripts depend on (docs/migrating-from-ingress-nginx.md)."""
    document: dict[str, Any] = {
        "ingresses": [
            {
                "namespace": report.namespace,
                "name": report.name,
                "verdict": report.verdict,
                "annotations": [
                    {
                        "key": finding.key,
                        "value": finding.value,
                        "status": finding.status,
                        "reason": finding.reason,
                    }
                    for finding in report.annotations
                ],
                "problems": list(report.problems),
            }
            for report in reports
        ]
    }
    if configmap_report is not None:
        document["configmap"] = {
            "role_variables": dict(configmap_report.role_variables),
            "not_reproduced": [
                {"key": key, "value": value, "reason": reason}
                for key, value, reason in configmap_report.not_reproduced
            ],
        }
    return document


def as_text(reports: list[IngressReport], configmap_report: ConfigMapReport | None) -> str:
    lines = []
    for report in reports:
        lines.append(f"Ingress {report.namespace}/{report.name}: {report.verdict}")
        for finding in report.annotations:
            # A reason names the annotation and its value already.
            shown = finding.reason or f"annotation {finding.key} {grammar.show(finding.value)}"
            lines.append(f"  {finding.status}: {shown}")
        lines.extend(f"  problem: {problem}" for problem in report.problems)
    counts = {verdict: 0 for verdict in (SERVED, WARNINGS, REFUSED)}
    for report in reports:
        counts[report.verdict] += 1
    lines.append(", ".join(f"{count} {verdict}" for verdict, count in counts.items()))
    if configmap_report is not None:
        lines.append("ConfigMap: role variables that reproduce it (group_vars of the edge):")
        for variable, value in configmap_report.role_variables.items():
            lines.append(f"  {variable}: {_yaml_scalar(value)}")
        for key, value, reason in configmap_report.not_reproduced:
            lines.append(f"  not reproduced: {key}={grammar.show(value)}: {reason}")
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):  # a list setting (global-allowed-response-headers)
        return "[" + ", ".join(_yaml_scalar(item) for item in value) + "]"
    return str(value) if isinstance(value, int) else f'"{value}"'
