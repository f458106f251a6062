"""A TLS pair, and a cipher list, loaded as nginx will load them: by the system OpenSSL,
at its security level.

`cryptography` parses and matches a pair (grammar.tls_pair), but nginx refuses more: at
Debian's security level 2 an RSA or DSA key under 2048 bits ("ee key too small"), a
certificate signed with SHA-1 or MD5 ("ca md too weak"). One such Secret used to make
every candidate fail `nginx -t`, so no change of anyone reached traffic (issue 14).
Python's `ssl` module is linked against the same system OpenSSL and reads the same
openssl.cnf, and its server context asks for security level 2 like Debian's default, so
loading the pair into one says what nginx will say. The pair goes through a memfd: the
key never touches a filesystem.
"""

import os
import ssl


def unloadable(pem: bytes) -> str | None:
    """Why OpenSSL refuses `pem` (certificate chain then key) as a server pair, or None."""
    descriptor = os.memfd_create("edgeagent-tls-pair", os.MFD_CLOEXEC)
    try:
        os.write(descriptor, pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(f"/proc/self/fd/{descriptor}")
        except ssl.SSLError as error:
            reason = error.reason or str(error)
            return f"OpenSSL refuses the pair: {reason.lower().replace('_', ' ')}"
    finally:
        os.close(descriptor)
    return None


def unselectable(ciphers: str) -> str | None:
    """Why OpenSSL selects no cipher from the list `ciphers`, or None. nginx fails to load
    an `ssl_ciphers` (or `proxy_ssl_ciphers`) that selects none, so one such list would
    make every candidate fail `nginx -t`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError as error:
        return f"OpenSSL selects no cipher from it: {str(error.args[0]).rstrip('.').lower()}"
    return None
