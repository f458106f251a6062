"""The Debian sources of this host's apt, for the node images (lab/image.sh, lab/vm/image.sh).

The images are built from the mirror the host itself uses and get the same sources, whatever
and wherever that mirror is: nothing here names one.

    python3 lab/apt_sources.py mirror bookworm     # the first deb URI for the suite
    python3 lab/apt_sources.py sources bookworm    # deb822 stanzas of the suite and its
                                                   # -updates, -security, ... suites
    python3 lab/apt_sources.py sources trixie --like bookworm
        # a suite the host's apt does not name: the host's bookworm sources, renamed (the same
        # archives serve every Debian release)

Reads /etc/apt/sources.list.d/*.sources (deb822) and /etc/apt/sources.list (one-line format),
or the files given with --file. Exits 1 with a message when no source names the suite.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FILES = [
    *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
    Path("/etc/apt/sources.list"),
]


@dataclass(frozen=True)
class Source:
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str = ""

    def deb822(self) -> str:
        lines = [
            "Types: deb",
            f"URIs: {' '.join(self.uris)}",
            f"Suites: {' '.join(self.suites)}",
            f"Components: {' '.join(self.components)}",
        ]
        if self.signed_by:
            lines.append(f"Signed-By: {self.signed_by}")
        return "\n".join(lines) + "\n"


def parse_deb822(text: str) -> list[Source]:
    """The enabled `deb` stanzas of a .sources file (comments and deb-src left out)."""
    sources = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:  # a continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        sources.append(
            Source(
                uris=tuple(fields.get("uris", "").split()),
                suites=tuple(fields.get("suites", "").split()),
                components=tuple(fields.get("components", "").split()),
                signed_by=fields.get("signed-by", ""),
            )
        )
    return sources


def parse_one_line(text: str) -> list[Source]:
    """The `deb` lines of a sources.list ("deb [options] URI SUITE COMPONENT...")."""
    sources = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        signed_by = ""
        if words and words[0].startswith("["):
            options = []
            while words:
                word = words.pop(0)
                options.append(word.strip("[]"))
                if word.endswith("]"):
                    break
            for option in options:
                if option.startswith("signed-by="):
                    signed_by = option.split("=", 1)[1]
        if len(words) >= 2:
            sources.append(Source((words[0],), (words[1],), tuple(words[2:]), signed_by))
    return sources


def read_sources(files: list[Path]) -> list[Source]:
    sources = []
    for path in files:
        if path.is_file():
            text = path.read_text()
            sources += parse_deb822(text) if path.suffix == ".sources" else parse_one_line(text)
    return sources


def of_suite(sources: list[Source], suite: str) -> list[Source]:
    """The sources of the suite and of its companions (suite-updates, suite-security, ...),
    each narrowed to those suites."""
    wanted = []
    for source in sources:
        suites = tuple(name for name in source.suites if name.split("-")[0].split("/")[0] == suite)
        if suites and source.uris:
            wanted.append(Source(source.uris, suites, source.components, source.signed_by))
    return wanted


def renamed(sources: list[Source], old: str, new: str) -> list[Source]:
    """The sources with suite `old` and its companions renamed to `new` (bookworm-security ->
    trixie-security)."""
    return [
        Source(
            source.uris,
            tuple(new + name[len(old) :] for name in source.suites),
            source.components,
            source.signed_by,
        )
        for source in sources
    ]


def mirror(sources: list[Source], suite: str) -> str | None:
    """The first URI that serves the suite itself."""
    for source in sources:
        if suite in source.suites:
            return source.uris[0]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["mirror", "sources"])
    parser.add_argument("suite")
    parser.add_argument("--file", type=Path, action="append", help="instead of the host's")
    parser.add_argument("--like", help="when no source names the suite: this suite's, renamed")
    args = parser.parse_args()
    files = args.file or DEFAULT_FILES
    sources = of_suite(read_sources(files), args.suite)
    if not sources and args.like:
        sources = renamed(of_suite(read_sources(files), args.like), args.like, args.suite)
    found = mirror(sources, args.suite)
    if found is None:
        names = ", ".join(str(path) for path in files)
        print(f"no deb source for {args.suite} in the apt sources ({names})", file=sys.stderr)
        return 1
    if args.what == "mirror":
        print(found)
    else:
        print("\n".join(source.deb822() for source in sources), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
