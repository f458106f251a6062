"""Field metadata that makes a settings field an `edgeagent run` option.

A component's settings dataclass (`ApplySettings`, `SyncSettings`, `WatchSettings`...)
marks the fields an operator may set with `option(...)` (or `seconds`, `listen`,
`path`): the flag's name and help, its metavar, how a flag's text or a YAML value is
parsed, and the `grammar` check the value must pass. The field's default and its
docstring (why the default is what it is) stay where they are; settings.py gathers the
marked fields of every component into the flags, the config file's keys and the checks.
Pure: no component is imported here.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from collections.abc import Callable
from typing import Any

from edgeagent import grammar


class ConfigError(Exception):
    """A setting that cannot be used: exit 2 with the message."""


def switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"expected true or false, got {value!r}")


def boolean(value: Any) -> bool:
    """A setting on by default, which `--flag false` (or YAML's false) turns off."""
    if isinstance(value, bool):
        return value
    if str(value) in ("true", "false"):
        return str(value) == "true"
    raise ConfigError(f"expected true or false, got {value!r}")


def addresses(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def command(value: Any) -> tuple[str, ...]:
    parts = [str(v) for v in value] if isinstance(value, list) else shlex.split(str(value))
    if not parts:
        raise ConfigError("the reload command is empty")
    return tuple(parts)


def one_of(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def non_negative(value: Any) -> float:
    number = float(value)
    if number < 0:
        raise ConfigError(f"{value!r} is negative")
    return number


def count(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ConfigError(f"{value!r} must be at least 1")
    return number


def option(
    flag: str,
    help: str,
    metavar: str | None = None,
    parse: Callable[[Any], Any] = str,
    check: Callable[[Any, str], Any] | None = None,
) -> dict[str, Any]:
    """`--flag`'s metadata: its help (`%(default)s` is replaced by the default), metavar
    (None: a switch, `store_true`), the parser of a flag's text or a YAML value, and a
    `grammar` check the parsed value must pass."""
    return {"flag": flag, "help": help, "metavar": metavar, "parse": parse, "check": check}


def seconds(flag: str, help: str) -> dict[str, Any]:
    return option(flag, f"{help} (default: %(default)s s)", "SECONDS", non_negative)


def listen(flag: str, help: str) -> dict[str, Any]:
    return option(flag, f"{help} (default: %(default)s)", "ADDR:PORT", check=grammar.listen)


def path(flag: str, help: str, metavar: str = "FILE") -> dict[str, Any]:
    """An absolute path that reaches nginx's configuration, so it must be a plain token."""
    return option(flag, help, metavar, check=grammar.file_path)


def _shown(value: Any) -> str:
    """A default as an operator writes it: a command as one line, a boolean as YAML's."""
    if isinstance(value, bool):
        return str(value).lower()
    return " ".join(value) if isinstance(value, tuple) else str(value)


def add_argument(section: argparse._ActionsContainer, each: dataclasses.Field, **extra) -> None:
    """`each`'s `--flag` (default None: given or not), its help naming the field's default;
    `extra` goes to argparse (`type=`, for a command that parses at once)."""
    meta = each.metadata
    if meta["metavar"] is None:
        section.add_argument(
            f"--{meta['flag']}", action="store_true", default=None, help=meta["help"], **extra
        )
    else:
        section.add_argument(
            f"--{meta['flag']}",
            default=None,
            metavar=meta["metavar"],
            help=meta["help"].replace("%(default)s", _shown(each.default)),
            **extra,
        )
