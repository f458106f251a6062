"""What a family parser reads the annotations through: values by short key, each parsed
with a grammar function, every problem kept (not only the first)."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgeagent import grammar
from edgeagent.grammar import Invalid


@dataclass(frozen=True)
class Finding:
    """What became of one annotation. `status` is "supported", "ignored" (served without
    it, a warning) or "refused" (the Ingress is not served); `code` the Problem code
    ("warning", "invalid", "unsupported"; "" when supported); `reason` one line, naming
    the annotation and its value."""

    key: str
    value: str
    status: str
    code: str = ""
    reason: str = ""


class Reader:
    def __init__(self, prefix: str, values: Mapping[str, str]) -> None:
        self.prefix = prefix
        self.values = values
        self.findings: dict[str, Finding] = {}

    def has(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, parse: Callable[[Any, str], Any]) -> Any:
        """The parsed value of `key`, or None when it is absent or invalid."""
        if key not in self.values:
            return None
        value = self.values[key]
        full = self.prefix + key
        try:
            parsed = parse(value, f"annotation {full}")
        except Invalid as error:
            self.findings[key] = Finding(full, value, "refused", error.code, str(error))
            return None
        self.findings[key] = Finding(full, value, "supported")
        return parsed

    def ignore(self, key: str, why: str) -> None:
        full = self.prefix + key
        value = self.values[key]
        reason = f"annotation {full} {grammar.show(value)} is ignored: {why}"
        self.findings[key] = Finding(full, value, "ignored", "warning", reason)

    def refuse(self, key: str, reason: str) -> None:
        """Refuse `key` for a reason of the family's (one that only other keys explain)."""
        self.findings[key] = Finding(
            self.prefix + key, self.values[key], "refused", "unsupported", reason
        )
