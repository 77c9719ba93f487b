"""Claude Code in tests: run it watching its sockets, and read back its session transcript."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.clients.adapters.claude_code import ClaudeCodeCommand
from harness.clients.launch import ClientRun, run_client


@dataclass(frozen=True)
class RetryAttempt:
    """One ``{"type": "system", "subtype": "api_error", "retryAttempt": n, ...}`` transcript line:
    Claude Code is about to sleep ``retry_in_ms`` and send attempt ``attempt + 1``."""

    attempt: int
    retry_in_ms: int
    max_retries: int | None
    status: int | None  # HTTP status; None for a connection error
    code: str | None  # connection error code (ECONNRESET, ECONNREFUSED, ...)
    message: str  # what it would show the user ("Connection dropped (ECONNRESET)")
    source: str | None  # "request_retry", ...
    timestamp: str | None


@dataclass(frozen=True)
class ClaudeCodeRun:
    run: ClientRun
    home: Path
    peers: frozenset[str]  # remote addresses of the group's TCP sockets seen by `ss` (if watched)

    @property
    def transcript(self) -> list[dict[str, Any]]:
        return transcript(self.home)

    @property
    def attempts(self) -> list[RetryAttempt]:
        return retry_attempts(self.home)


def run_claude_code(command: ClaudeCodeCommand, watch_sockets: bool = False, poll_s: float = 0.05) -> ClaudeCodeRun:
    """Run like any client (deadline, whole process group killed). With ``watch_sockets``, sample
    ``ss -tnp`` while it runs and collect the remote address of every TCP socket its group holds."""
    peers: set[str] = set()
    done = threading.Event()
    watchers: list[threading.Thread] = []

    def started(pgid: int) -> None:
        if watch_sockets:
            watchers.append(threading.Thread(target=_watch_sockets, args=(pgid, peers, done, poll_s), daemon=True))
            watchers[0].start()

    try:
        run = run_client(command.argv, command.env, command.deadline_s, cwd=command.cwd, on_start=started, stdin=command.stdin)
    finally:
        done.set()
        for watcher in watchers:
            watcher.join(5)
    return ClaudeCodeRun(run, command.home, frozenset(peers))


def _watch_sockets(pgid: int, peers: set[str], done: threading.Event, poll_s: float) -> None:
    while not done.is_set():
        try:
            listing = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) < 6 or "pid=" not in line:
                continue
            pids = [int(chunk.split(",")[0]) for chunk in line.split("pid=")[1:]]
            if any(_pgid(pid) == pgid for pid in pids):
                peers.add(parts[4].rsplit(":", 1)[0].strip("[]"))
        done.wait(poll_s)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def transcript(home: Path | str) -> list[dict[str, Any]]:
    """Every line of every session transcript under ``$HOME/.claude/projects/*/*.jsonl``, file by
    file in modification order."""
    files = sorted(Path(home).glob(".claude/projects/*/*.jsonl"), key=lambda p: p.stat().st_mtime)
    records = []
    for path in files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)
    return records


def retry_attempts(home: Path | str) -> list[RetryAttempt]:
    """The retries Claude Code announced, in order. A run with no retry has none; a run that
    gave up after N retries has N (its final error is an assistant message with
    ``isApiErrorMessage``)."""
    attempts = []
    for record in transcript(home):
        if record.get("type") != "system" or "retryAttempt" not in record:
            continue
        error = record.get("error") or {}
        connection = error.get("connection") or {}
        attempts.append(
            RetryAttempt(
                attempt=int(record["retryAttempt"]),
                retry_in_ms=int(record.get("retryInMs") or 0),
                max_retries=record.get("maxRetries"),
                status=error.get("status"),
                code=connection.get("code"),
                message=str(error.get("formatted") or error.get("message") or ""),
                source=record.get("source"),
                timestamp=record.get("timestamp"),
            )
        )
    return attempts


def api_requests(home: Path | str) -> list[dict[str, Any]]:
    """The ``api-request`` lines: one per request Claude Code built (model, betas, max_tokens,
    thinking, ...); retries of the same request are not repeated here."""
    return [r for r in transcript(home) if r.get("type") == "api-request"]


def tool_results(home: Path | str) -> list[dict[str, Any]]:
    """The tool_result blocks Claude Code sent back, in order."""
    out = []
    for record in transcript(home):
        message = record.get("message") or {}
        if record.get("type") == "user" and isinstance(message.get("content"), list):
            out += [b for b in message["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
    return out
