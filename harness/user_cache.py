"""The user cache (``~/.cache/streamchaos``, or ``$STREAMCHAOS_CACHE_DIR``): where client versions
and tools are installed on first use, once, under a lock, by commands whose failure says what to do.

Shared by the client versions and the toxiproxy binary, which both install into it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "STREAMCHAOS_CACHE_DIR"
INSTALL_TIMEOUT_S = 900.0


class InstallError(ValueError):
    """Something that cannot be had: unknown to its registry, registry unreachable, or an install
    or build that failed. The message says which and what to do."""


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamchaos"


def say(message: str) -> None:
    """The progress line of an install (stderr, so stdout stays the command's output)."""
    print(f"streamchaos: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path`` for the block: two installs of one thing never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def last_lines(text: str, count: int = 2) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "no output"


def run_tool(argv: list[str], cwd: Path, what: str, env: dict | None = None, timeout: float = INSTALL_TIMEOUT_S) -> str:
    """Run an installer step; its stdout, or :class:`InstallError` naming the step and its last lines."""
    try:
        out = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise InstallError(f"{what}: `{' '.join(argv[:4])}` took over {timeout:.0f} s") from None
    if out.returncode != 0:
        raise InstallError(f"{what}: `{' '.join(argv[:5])}` failed: {last_lines(out.stderr or out.stdout, 4)}")
    return out.stdout
