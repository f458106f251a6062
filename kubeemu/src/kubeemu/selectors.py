"""Label and field selectors, parsed once per request and matched per object.

The grammar is the API server's: label selectors take `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
`k notin (a,b)`, `k` and `!k`, joined by commas; field selectors take `path=v`, `path==v`
and `path!=v`. The real server only accepts a few field paths per kind (and answers 400
for the others); this emulator accepts any dotted path, which is a superset.

Each requirement also says which index can answer it (`indexable`): an equality, an `in`
or an existence test names a bounded set of objects, so the store can answer a list in
O(matching) instead of scanning every object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SET_REQUIREMENT = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s+(in|notin)\s+\((.*)\)\s*$")
_BINARY_REQUIREMENT = re.compile(r"^\s*([^\s!=(),]+)\s*(==|!=|=)\s*([^\s!=(),]*)\s*$")
_EXISTS_REQUIREMENT = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


class SelectorError(ValueError):
    """A selector that does not parse: the API answers 400 BadRequest."""


@dataclass(frozen=True)
class Requirement:
    """One comma-separated term of a selector."""

    key: str
    operator: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    @property
    def indexable(self) -> bool:
        """True when the matching objects are a subset of those having `key` in the index."""
        return self.operator in ("in", "exists")

    def matches(self, value: str | None) -> bool:
        if self.operator == "in":
            return value is not None and value in self.values
        if self.operator == "notin":
            return value is None or value not in self.values
        if self.operator == "exists":
            return value is not None
        return value is None


def _split_terms(text: str) -> list[str]:
    """Split on the commas that are not inside `in (...)` parentheses."""
    terms, depth, start = [], 0, 0
    for position, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parentheses in {text!r}")
        elif char == "," and depth == 0:
            terms.append(text[start:position])
            start = position + 1
    if depth:
        raise SelectorError(f"unbalanced parentheses in {text!r}")
    terms.append(text[start:])
    return [term for term in terms if term.strip()]


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    if not text:
        return ()
    requirements = []
    for term in _split_terms(text):
        if match := _SET_REQUIREMENT.match(term):
            negated, key, operator, values = match.groups()
            if negated:
                raise SelectorError(f"unexpected '!' in {term!r}")
            parsed = frozenset(value.strip() for value in values.split(",") if value.strip())
            requirements.append(Requirement(key, operator, parsed))
        elif match := _BINARY_REQUIREMENT.match(term):
            key, operator, value = match.groups()
            requirements.append(
                Requirement(key, "notin" if operator == "!=" else "in", frozenset({value}))
            )
        elif match := _EXISTS_REQUIREMENT.match(term):
            negated, key = match.groups()
            requirements.append(Requirement(key, "!exists" if negated else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement {term!r}")
    return tuple(requirements)


def parse_field_selector(text: str | None) -> tuple[Requirement, ...]:
    if not text:
        return ()
    requirements = []
    for term in _split_terms(text):
        match = _BINARY_REQUIREMENT.match(term)
        if not match:
            raise SelectorError(f"invalid field selector term {term!r}")
        key, operator, value = match.groups()
        requirements.append(
            Requirement(key, "notin" if operator == "!=" else "in", frozenset({value}))
        )
    return tuple(requirements)


def field_value(obj: dict[str, Any], path: str) -> str | None:
    """The value at a dotted path as the API compares it: a string, or None when absent."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def label_value(obj: dict[str, Any], key: str) -> str | None:
    labels = obj.get("metadata", {}).get("labels") or {}
    value = labels.get(key)
    return None if value is None else str(value)


def matches(
    obj: dict[str, Any], labels: tuple[Requirement, ...], fields: tuple[Requirement, ...]
) -> bool:
    return all(req.matches(label_value(obj, req.key)) for req in labels) and all(
        req.matches(field_value(obj, req.key)) for req in fields
    )
