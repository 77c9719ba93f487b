"""A local CA and a localhost certificate, written where clients can be told to trust them."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

ALPN = ["h2", "http/1.1"]


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
    if all(path.exists() for path in (files.ca_file, files.cert_file, files.key_file)):
        return files
    ca = trustme.CA(organization_name="streamchaos local CA")
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
    ca.cert_pem.write_to_path(str(files.ca_file))
    leaf.private_key_pem.write_to_path(str(files.key_file))
    with open(files.cert_file, "wb") as handle:
        for blob in leaf.cert_chain_pems:
            handle.write(blob.bytes())
    return files


def server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(files.cert_file), str(files.key_file))
    context.set_alpn_protocols(ALPN)
    # RFC 7540 9.2: TLS 1.2+ and no renegotiation for h2.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    return context
