"""Finding a usable ``toxiproxy-server`` (>= 2.12): given, in tools/bin, on PATH, or built on first use."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from harness.network.toxiproxy.errors import ToxiproxyUnavailable

ROOT = Path(__file__).resolve().parents[3]  # the checkout
TOOLS_BINARY = ROOT / "tools" / "bin" / "toxiproxy-server"
MIN_VERSION = (2, 12, 0)

INSTALL_HINT = (
    "run `make toxiproxy` (it builds toxiproxy v2.12.0 into tools/bin with `go install`), which needs "
    "Go >= 1.23 (https://go.dev/doc/install); or put a toxiproxy-server >= 2.12 on PATH"
)


def binary_version(path: str | Path, timeout_s: float = 5.0) -> tuple[int, int, int] | None:
    """``toxiproxy-server -version`` as a tuple, or None if it does not say."""
    try:
        out = subprocess.run([str(path), "-version"], capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    return tuple(int(x) for x in found.groups()) if found else None  # type: ignore[return-value]


def find_binary(explicit: str | Path | None = None, tools_binary: Path = TOOLS_BINARY, min_version: tuple[int, int, int] = MIN_VERSION) -> Path:
    """``explicit``, else ``tools/bin/toxiproxy-server`` (installed by ``make toxiproxy``), else a
    ``toxiproxy-server`` on PATH reporting at least ``min_version``."""
    want = ".".join(map(str, min_version))
    looked: list[str] = []
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    else:
        candidates.append(tools_binary)
        on_path = shutil.which("toxiproxy-server")
        if on_path:
            candidates.append(Path(on_path))
    for candidate in candidates:
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            looked.append(f"{candidate}: not there")
            continue
        version = binary_version(candidate)
        if version is None:
            looked.append(f"{candidate}: does not report a version")
        elif version < min_version:
            looked.append(f"{candidate}: version {'.'.join(map(str, version))} < {want}")
        else:
            return candidate
    if explicit is None and not shutil.which("toxiproxy-server"):
        looked.append("PATH: no toxiproxy-server")
    if explicit is None and tools_binary == TOOLS_BINARY:  # issue 14: installed on first use into the user cache (`go install`)
        from harness.clients import versions

        try:
            return versions.ensure_toxiproxy()
        except versions.VersionError as error:
            looked.append(str(error))
    raise ToxiproxyUnavailable(f"no toxiproxy-server >= {want} ({'; '.join(looked)}): {INSTALL_HINT}")



def available() -> tuple[bool, str | None]:
    """(True, None) if a usable toxiproxy-server is installed, else (False, how to get one)."""
    try:
        find_binary()
    except ToxiproxyUnavailable as error:
        return False, str(error)
    return True, None
