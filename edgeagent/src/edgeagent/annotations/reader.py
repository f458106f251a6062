"""What a family parser reads the annotations through: values by short key, each parsed
with a grammar function, every problem kept (not only the first)."""

import re
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


# What a tuning value may hold to be served without (`Reader.tune`): nothing nginx could
# read as syntax. Empty too: ingress-nginx validates no empty value, and its parser's
# default stands for one (parseString and parseInt refuse "").
PLAIN_VALUE = re.compile(r"[A-Za-z0-9._+ -]{0,64}")
# The forms of ingress-nginx's validators (annotations/parser): strconv.Atoi's whole
# numbers, SizeRegex (blanks removed first), the options of ValidateOptions.
WHOLE_FORM = re.compile(r"[+-]?[0-9]+")
SIZE_FORM = re.compile(r"( *[0-9])+ *([bkmgBKMG] *)?")
ON_OFF_FORM = re.compile(r"\s*(on|off)\s*")
HTTP_VERSION_FORM = re.compile(r"\s*(1\.0|1\.1)\s*")


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

    def tune(self, key: str, parse: Callable[[Any, str], Any], form: re.Pattern) -> Any:
        """As `get`, for a key that only tunes, whose value ingress-nginx's parser replaced
        by its default when it was not of `form` (its validator's), serving the Ingress
        (its e2e tests: "should not set invalid proxy timeouts"): such a value is ignored
        with a warning, and the Ingress served with the default, as there. A value of the
        form is the grammar's to judge (ingress-nginx wrote it into nginx's configuration
        as it was, a whole number as the number it read), and one holding anything nginx
        could read as syntax stays refused."""
        value = self.values.get(key)
        if form is WHOLE_FORM and value is not None and form.fullmatch(value):
            # ingress-nginx wrote the number strconv.Atoi read: `+30` and `030` are 30.
            return self.get(key, lambda whole, what: parse(str(int(whole)), what))
        if value is None or form.fullmatch(value) or not PLAIN_VALUE.fullmatch(value):
            return self.get(key, parse)
        self.ignore(
            key,
            "not of the form ingress-nginx reads, which then serves the Ingress with its "
            "default instead; so does edgeagent",
        )
        return None

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
