"""A local CA and a localhost certificate, written where clients can be told to trust them."""

from __future__ import annotations

import fcntl
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

ALPN = ["h2", "http/1.1"]
LAB_HOST = "198.18.0.1"  # the network lab's host-side address (harness/lab): lab clients connect there


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def ensure_certificates(directory: Path) -> TlsFiles:
    """Create the CA and the leaf once per directory; later calls reuse them, so a client that
    was given ``ca.pem`` keeps trusting every simulator started from the same directory."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "localhost.pem", directory / "localhost-key.pem")
    # Simulators started at once must not mix one's CA with another's leaf: one makes them,
    # under a lock, and each file appears whole (written aside, then renamed).
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(path.exists() for path in (files.ca_file, files.cert_file, files.key_file)):
            if files.key_file.stat().st_mode & 0o077:  # written by an older version: readable by others
                os.chmod(files.key_file, 0o600)
            return files
        ca = trustme.CA(organization_name="streamchaos local CA")
        leaf = ca.issue_cert("localhost", "127.0.0.1", "::1", LAB_HOST)
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        for path, data in ((files.key_file, leaf.private_key_pem.bytes()), (files.cert_file, chain), (files.ca_file, ca.cert_pem.bytes())):
            temporary = path.with_suffix(".tmp")
            mode = 0o600 if path == files.key_file else 0o644  # the private key: its owner only
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(descriptor, "wb") as handle:
                os.fchmod(handle.fileno(), mode)  # an existing .tmp keeps its mode through O_CREAT
                handle.write(data)
            os.replace(temporary, path)
    return files


KEYLOG_ENV = "STREAMCHAOS_TLS_KEYLOG"


def server_context(files: TlsFiles, keylog: str | None = None) -> ssl.SSLContext:
    """``keylog`` (or $STREAMCHAOS_TLS_KEYLOG) names a file that gets every session's secrets in
    the NSS key log format (SSLKEYLOGFILE), so Wireshark/tshark can decrypt a capture."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    keylog = keylog or os.environ.get(KEYLOG_ENV)
    if keylog:
        context.keylog_filename = keylog
    context.load_cert_chain(str(files.cert_file), str(files.key_file))
    context.set_alpn_protocols(ALPN)
    # RFC 7540 9.2: TLS 1.2+ and no renegotiation for h2.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    return context
