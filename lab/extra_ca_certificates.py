"""Copy the CA certificates the host trusts beyond a node root's bundle into that root.

Nodes reach the Debian and PyPI registries the way the host does. Where the host trusts extra
CAs (a TLS-inspecting proxy, a company CA), the nodes must trust them too; the image build
then runs update-ca-certificates in the root.

Usage: extra_ca_certificates.py HOST_BUNDLE NODE_ROOT
"""

import pathlib
import sys

BEGIN = "-----BEGIN CERTIFICATE-----"
END = "-----END CERTIFICATE-----"


def certificates(bundle: str) -> list[str]:
    """The PEM blocks of a bundle, normalised so that equal certificates compare equal."""
    blocks = bundle.split(END)[:-1]
    return [block[block.index(BEGIN) :] + END + "\n" for block in blocks if BEGIN in block]


def main(host_bundle: pathlib.Path, node_root: pathlib.Path) -> None:
    node_bundle = node_root / "etc/ssl/certs/ca-certificates.crt"
    known = set(certificates(node_bundle.read_text()))
    extra = [c for c in certificates(host_bundle.read_text()) if c not in known]
    target = node_root / "usr/local/share/ca-certificates"
    for number, certificate in enumerate(extra):
        (target / f"host-{number}.crt").write_text(certificate)
    print(f"{len(extra)} extra CA certificate(s) from the host")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))
