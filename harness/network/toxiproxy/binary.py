"""Finding a usable ``toxiproxy-server`` (>= 2.12): given, in tools/bin, on PATH, or built on first use."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from harness.network.toxiproxy.errors import ToxiproxyUnavailable
from harness.user_cache import InstallError, cache_root, locked, run_tool, say

ROOT = Path(__file__).resolve().parents[3]  # the checkout
TOOLS_BINARY = ROOT / "tools" / "bin" / "toxiproxy-server"
MIN_VERSION = (2, 12, 0)
VERSION = "2.12.0"  # built into the user cache on first use when no binary is found

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
        try:
            return ensure_in_cache()
        except InstallError as error:
            looked.append(str(error))
    raise ToxiproxyUnavailable(f"no toxiproxy-server >= {want} ({'; '.join(looked)}): {INSTALL_HINT}")


def available() -> tuple[bool, str | None]:
    """(True, None) if a usable toxiproxy-server is installed, else (False, how to get one)."""
    try:
        find_binary()
    except ToxiproxyUnavailable as error:
        return False, str(error)
    return True, None


def ensure_in_cache(version: str = VERSION) -> Path:
    """``toxiproxy-server`` built with ``go install`` into ``<cache>/tools/toxiproxy/<version>``."""
    target = cache_root() / "tools" / "toxiproxy" / version
    binary = target / "toxiproxy-server"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if not go:
        raise InstallError(
            "toxiproxy-server is not installed and `go` is not on PATH to build it: install Go >= 1.23 "
            "(https://go.dev/doc/install) or put a toxiproxy-server >= 2.12 on PATH"
        )
    with locked(target.parent / f".lock-{version}"):
        if binary.exists():
            return binary
        scratch = target.parent / f".tmp-{version}-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        say(f"installing toxiproxy {version} with `go install` into {target} (first use) ...")
        started = time.monotonic()
        flags = f"-X github.com/Shopify/toxiproxy/v2.Version={version}"
        try:
            for part, name in (("server", "toxiproxy-server"), ("cli", "toxiproxy-cli")):
                run_tool(
                    [go, "install", "-ldflags", flags, f"github.com/Shopify/toxiproxy/v2/cmd/{part}@v{version}"],
                    scratch,
                    f"go install toxiproxy {version} (offline?)",
                    {"GOBIN": str(scratch), "GOFLAGS": "-mod=mod"},
                )
                (scratch / part).rename(scratch / name)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
        say(f"installed toxiproxy {version} in {time.monotonic() - started:.1f} s")
    return binary
