"""lab/apt_sources.py: the node images' mirror and sources come from the host's apt sources,
in either format."""

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "apt_sources.py"
_spec = importlib.util.spec_from_file_location("apt_sources", SCRIPT)
apt_sources = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(apt_sources)

DEB822 = """\
Types: deb deb-src
# a comment inside the stanza
URIs: http://mirror.test/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.test/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.test/debian
Suites: bookworm

Types: deb
URIs: http://other.test/repo
Suites: stable
Components: main
"""

ONE_LINE = """\
# deb http://commented.test/debian bookworm main
deb-src http://mirror.test/debian bookworm main
deb [arch=amd64 signed-by=/etc/apt/keyrings/debian.gpg] http://mirror.test/debian bookworm main
deb http://mirror.test/debian-security bookworm-security main # trailing comment
deb http://other.test/repo stable main
"""


def test_deb822_stanzas_of_the_suite_and_its_companions():
    sources = apt_sources.of_suite(apt_sources.parse_deb822(DEB822), "bookworm")
    assert [source.uris for source in sources] == [
        ("http://mirror.test/debian",),
        ("http://mirror.test/debian-security",),
    ]
    assert sources[0].suites == ("bookworm", "bookworm-updates")
    assert sources[0].components == ("main", "contrib")
    assert apt_sources.mirror(sources, "bookworm") == "http://mirror.test/debian"


def test_one_line_format_with_options_and_comments():
    sources = apt_sources.of_suite(apt_sources.parse_one_line(ONE_LINE), "bookworm")
    assert sources == [
        apt_sources.Source(
            ("http://mirror.test/debian",), ("bookworm",), ("main",), "/etc/apt/keyrings/debian.gpg"
        ),
        apt_sources.Source(
            ("http://mirror.test/debian-security",), ("bookworm-security",), ("main",)
        ),
    ]
    assert apt_sources.mirror(sources, "bookworm") == "http://mirror.test/debian"


def test_sources_are_written_as_deb822(tmp_path):
    listing = tmp_path / "sources.list"
    listing.write_text(ONE_LINE)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "sources", "bookworm", "--file", str(listing)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == (
        "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm\nComponents: main\n"
        "Signed-By: /etc/apt/keyrings/debian.gpg\n\n"
        "Types: deb\nURIs: http://mirror.test/debian-security\nSuites: bookworm-security\n"
        "Components: main\n"
    )
    assert apt_sources.parse_deb822(result.stdout) == apt_sources.of_suite(
        apt_sources.parse_one_line(ONE_LINE), "bookworm"
    )


def test_no_source_for_the_suite_is_an_error(tmp_path):
    listing = tmp_path / "debian.sources"
    listing.write_text(DEB822)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "mirror", "trixie", "--file", str(listing)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "no deb source for trixie" in result.stderr
    assert result.stdout == ""


def test_a_suite_the_host_does_not_name_is_the_host_suite_renamed(tmp_path):
    listing = tmp_path / "debian.sources"
    listing.write_text(DEB822)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "sources", "trixie", "--like", "bookworm",
         "--file", str(listing)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    sources = apt_sources.parse_deb822(result.stdout)
    assert [(source.uris, source.suites) for source in sources] == [
        (("http://mirror.test/debian",), ("trixie", "trixie-updates")),
        (("http://mirror.test/debian-security",), ("trixie-security",)),
    ]
    assert sources[0].signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    # A suite the host names is its own, never the renamed one.
    own = subprocess.run(
        [sys.executable, str(SCRIPT), "sources", "bookworm", "--like", "trixie",
         "--file", str(listing)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "trixie" not in own.stdout
