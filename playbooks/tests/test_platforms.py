"""The node platforms: the list site.yml accepts (playbooks/edge.yml), the nginx role's
package names per release (vars/<distribution>-<major>.yml) and the node images molecule's
Docker scenario runs name the same releases, so a platform is supported only with its package
names and a tested image."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# lab/image.sh's images by release.
IMAGES = {"Debian 12": "edge-node:latest", "Debian 13": "edge-node-trixie:latest"}


def accepted() -> list[str]:
    (facts_play,) = [
        play for play in yaml.safe_load((REPO / "playbooks" / "edge.yml").read_text())
        if play["name"].startswith("Edge nodes | Facts")
    ]  # fmt: skip
    return facts_play["vars"]["__edge_platforms"]


def test_every_accepted_platform_has_the_nginx_roles_package_names():
    release_files = sorted((REPO / "roles" / "nginx" / "vars").glob("*-*.yml"))
    assert sorted(path.stem.replace("-", " ") for path in release_files) == sorted(accepted())
    for path in release_files:
        names = yaml.safe_load(path.read_text())
        assert set(names) == {"__nginx_release_package", "__nginx_lua_packages"}, path.name


def test_molecule_runs_a_node_of_every_accepted_platform():
    scenario = yaml.safe_load((REPO / "molecule" / "default" / "molecule.yml").read_text())
    edge_images = {
        platform["image"] for platform in scenario["platforms"] if "edge" in platform["groups"]
    }
    assert edge_images == {IMAGES[platform] for platform in accepted()}
