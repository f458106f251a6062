"""The failover settings of a keepalived.conf, for the report's "measured with" section.

The drill copies each node's live keepalived.conf into its raw data; the report quotes what
the figures were measured with (advert_int, VRRP version, preemption, track scripts, GARP,
static addresses) from that file rather than from inventory variables, which may not be what
is running.
Pure; understands the subset of the syntax the keepalived role writes (one statement per
line, `{`/`}` blocks, `#` and `!` comments, double-quoted arguments).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Block:
    keyword: str
    args: list[str]
    children: list[Block] = field(default_factory=list)

    def value(self, keyword: str) -> str | None:
        for child in self.children:
            if child.keyword == keyword:
                return " ".join(child.args) if child.args else ""
        return None

    def blocks(self, keyword: str) -> list[Block]:
        return [child for child in self.children if child.keyword == keyword]


class ConfigError(ValueError):
    """Unbalanced braces: not a keepalived.conf this module can read."""


def parse(text: str) -> Block:
    root = Block("", [])
    stack = [root]
    for number, raw in enumerate(text.splitlines(), start=1):
        words = _words(raw)
        if not words:
            continue
        if words == ["}"]:
            if len(stack) == 1:
                raise ConfigError(f"line {number}: '}}' without a block")
            stack.pop()
            continue
        opens = words[-1] == "{"
        block = Block(words[0], words[1:-1] if opens else words[1:])
        stack[-1].children.append(block)
        if opens:
            stack.append(block)
    if len(stack) != 1:
        raise ConfigError(f"{len(stack) - 1} block(s) not closed")
    return root


def _words(line: str) -> list[str]:
    # The lexer drops comments before it looks for quotes: "# a node's" is no open quote.
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#!"
    return list(lexer)


def _number(text: str | None) -> float | int | str | None:
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


def settings(text: str) -> dict[str, Any]:
    """The settings that decide failover timing, by block."""
    root = parse(text)
    garp = {}
    for globals_ in root.blocks("global_defs"):
        for child in globals_.children:
            if child.keyword.startswith("vrrp_garp"):
                garp[child.keyword] = _number(" ".join(child.args))
    script_keys = ("interval", "timeout", "rise", "fall", "weight")
    scripts = {
        block.args[0]: {key: _number(block.value(key)) for key in script_keys}
        for block in root.blocks("vrrp_script")
        if block.args
    }
    instances = []
    for block in root.blocks("vrrp_instance"):
        tracked = [child.keyword for b in block.blocks("track_script") for child in b.children]
        instances.append(
            {
                "name": block.args[0] if block.args else "",
                "version": _number(block.value("version")),
                "advert_int": _number(block.value("advert_int")),
                "priority": _number(block.value("priority")),
                "preempt": block.value("nopreempt") is None,
                "preempt_delay": _number(block.value("preempt_delay")),
                "unicast": bool(block.blocks("unicast_peer")),
                "track_script": tracked,
            }
        )
    # Addresses kept in every state, e.g. the VIPs on lo (keepalived_vip_on_lo): they decide
    # whether a node giving the VIPs up can still answer what it accepted.
    static = [
        " ".join([child.keyword, *child.args])
        for block in root.blocks("static_ipaddress")
        for child in block.children
    ]
    return {
        "global": garp,
        "static_ipaddress": static,
        "vrrp_script": scripts,
        "vrrp_instance": instances,
    }
