"""Claude Code (``@anthropic-ai/claude-code``, pinned in ``claude_code/package.json``) as a client.

:func:`claude_code_command` builds the command line and the environment for one
``claude -p PROMPT`` run against the simulator; :func:`run_claude_code` runs it in its own process
group (killed whole at the deadline, like every contract client) and can watch which addresses
its sockets talk to; :func:`retry_attempts` reads back the retries Claude Code recorded in its
session transcript.

What a non-interactive run needs, found by running 2.1.330 against the simulator:

* Nothing in ``HOME``. ``-p`` skips onboarding, the folder-trust dialog and the "use this API
  key?" question; an empty fresh ``HOME`` works, and Claude Code fills it itself
  (``.claude.json``, ``.claude/projects/<cwd>/<session>.jsonl``, a plugin store).
* No login: ``ANTHROPIC_API_KEY`` is sent as ``x-api-key``.
* Tools: in the default permission mode Claude Code runs read-only Bash commands such as
  ``sleep 1`` on its own, but anything that writes (``echo hi > x``) comes back to the model as an
  ``is_error`` tool_result ("needs approval"). ``--allowedTools Bash`` allows Bash outright.
  ``--dangerously-skip-permissions`` (and ``--permission-mode bypassPermissions``) refuse to
  start as root ("cannot be used with root/sudo privileges") unless ``IS_SANDBOX=1`` is set.
* ``--allowedTools`` takes any number of values, so the prompt goes after ``--``.

Environment, each variable and why (everything else is dropped: the caller's own
``ANTHROPIC_*``, ``CLAUDE_*``, OAuth tokens, cloud-provider switches and proxies never reach it):

``HOME``
    A fresh directory the caller owns: no settings, credentials, OAuth session or history of the
    developer's leak in, and the transcript of this one run is easy to find afterwards.
``XDG_CONFIG_HOME``, ``XDG_CACHE_HOME``, ``XDG_DATA_HOME``, ``XDG_STATE_HOME``, ``TMPDIR``
    Inside ``HOME``, so nothing it caches or spools lands outside the run's directory.
``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``
    Without it Claude Code calls other hosts at startup (telemetry, updates, feature flags).
    With it (and the proxy below), ``strace -e connect`` of a whole agentic run shows connects
    to the simulator only (``::1`` then ``127.0.0.1``) besides nscd's unix socket, and no
    datagram to a name server.
``ANTHROPIC_BASE_URL``, ``ANTHROPIC_API_KEY``
    The simulator and the trial's key (the journal groups requests by key).
``NODE_EXTRA_CA_CERTS``
    Trust the simulator's CA for ``https://localhost:PORT`` (the Bun runtime inside the native
    binary reads it like Node does).
``CLAUDE_CODE_MAX_RETRIES``
    Its own retry loop (default 10, clamped to 15); small values keep failing runs short.
``HTTPS_PROXY``, ``HTTP_PROXY`` (and lower case) ``= http://127.0.0.1:9``
    A safety net: any request to a host other than the simulator goes to a loopback port nothing
    listens on and is refused, so nothing leaves the machine even if a future version adds a
    call the nonessential-traffic flag does not cover. Verified: with a non-loopback base URL
    Claude Code sends ``CONNECT host:443`` to the proxy and never connects to the host.
``NO_PROXY``, ``no_proxy`` ``= 127.0.0.1,localhost,::1``
    The simulator itself is reached directly. (``localhost`` resolves to ``::1`` first; the
    simulator listens on 127.0.0.1, so each new connection costs one refused ``::1`` connect.)
``CLAUDE_ENABLE_BYTE_WATCHDOG=1``, ``CLAUDE_BYTE_STREAM_IDLE_TIMEOUT_MS`` (optional)
    Abort a stream that delivers no bytes for that long, retry, then fall back to a
    non-streaming request (REFERENCE section 3; not yet exercised here: the simulator has no
    stall fault). The 2.1.330 binary clamps the timeout to [10 000, 1 800 000] ms.
``BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP2_CLIENT=1`` (optional)
    Bun's fetch speaks HTTP/1.1 only by default; with this flag it negotiates h2 by ALPN.
``IS_SANDBOX=1`` (only with ``skip_permissions``)
    Lets ``--dangerously-skip-permissions`` start as root.

Flags: ``-p`` (print the final answer and exit: exit 0 on success, ``API Error: ...`` on stdout
and exit 1 on failure), ``--output-format text``, ``--session-id`` (a fresh uuid, so the
transcript file is known), ``--allowedTools`` (above), ``--model`` (optional; by default 2.1.330
asks for ``claude-opus-5-5``, which the simulator accepts like any model name).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.clients.contract import ClientRun, run_client

PACKAGE_DIR = Path(__file__).resolve().parent / "claude_code"
CLAUDE_BIN = PACKAGE_DIR / "node_modules" / ".bin" / "claude"
REFUSING_PROXY = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused
NO_PROXY = "127.0.0.1,localhost,::1"
PROMPT_IN_ARGV_LIMIT = 64 * 1024
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "SHELL", "TERM")


@dataclass(frozen=True)
class ClaudeCodeOptions:
    max_retries: int = 2
    model: str | None = None
    allowed_tools: tuple[str, ...] = ("Bash",)
    skip_permissions: bool = False
    byte_watchdog_ms: int | None = None  # set: CLAUDE_ENABLE_BYTE_WATCHDOG=1 with this timeout
    http2: bool = False
    extra_args: tuple[str, ...] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaudeCodeCommand:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    home: Path
    session_id: str
    deadline_s: float
    stdin: bytes | None = None  # the prompt, when it is too long for an argument (large context)


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


def claude_code_command(
    prompt: str,
    base_url: str,
    api_key: str,
    ca_file: str | None,
    deadline_s: float,
    home: Path | str,
    options: ClaudeCodeOptions = ClaudeCodeOptions(),
    binary: Path | str = CLAUDE_BIN,
) -> ClaudeCodeCommand:
    """The argv, environment and working directory for ``claude -p PROMPT``. ``home`` must be a
    fresh directory the caller owns (and removes); the working directory is made inside it."""
    home = Path(home)
    project = home / "project"
    for sub in ("project", "tmp", ".config", ".cache", ".local/share", ".local/state"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = {key: os.environ[key] for key in PASSED_THROUGH if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "TMPDIR": str(home / "tmp"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_MAX_RETRIES": str(options.max_retries),
        "HTTPS_PROXY": REFUSING_PROXY,
        "HTTP_PROXY": REFUSING_PROXY,
        "https_proxy": REFUSING_PROXY,
        "http_proxy": REFUSING_PROXY,
        "NO_PROXY": NO_PROXY,
        "no_proxy": NO_PROXY,
    })
    if ca_file:
        env["NODE_EXTRA_CA_CERTS"] = str(ca_file)
    if options.byte_watchdog_ms is not None:
        env["CLAUDE_ENABLE_BYTE_WATCHDOG"] = "1"
        env["CLAUDE_BYTE_STREAM_IDLE_TIMEOUT_MS"] = str(options.byte_watchdog_ms)
    if options.http2:
        env["BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP2_CLIENT"] = "1"
    if options.skip_permissions:
        env["IS_SANDBOX"] = "1"
    env.update(options.extra_env)

    session_id = str(uuid.uuid4())
    argv = [str(binary), "-p", "--output-format", "text", "--session-id", session_id]
    if options.model:
        argv += ["--model", options.model]
    if options.skip_permissions:
        argv.append("--dangerously-skip-permissions")
    argv += list(options.extra_args)
    if options.allowed_tools:
        argv += ["--allowedTools", *options.allowed_tools]
    if len(prompt.encode()) <= PROMPT_IN_ARGV_LIMIT:
        argv += ["--", prompt]
        return ClaudeCodeCommand(tuple(argv), env, str(project), home, session_id, deadline_s)
    # One argument may not exceed 128 KiB on Linux; `claude -p` reads a piped prompt instead.
    return ClaudeCodeCommand(tuple(argv), env, str(project), home, session_id, deadline_s, prompt.encode())


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
        attempts.append(RetryAttempt(
            attempt=int(record["retryAttempt"]),
            retry_in_ms=int(record.get("retryInMs") or 0),
            max_retries=record.get("maxRetries"),
            status=error.get("status"),
            code=connection.get("code"),
            message=str(error.get("formatted") or error.get("message") or ""),
            source=record.get("source"),
            timestamp=record.get("timestamp"),
        ))
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


def installed_version(binary: Path | str = CLAUDE_BIN, timeout_s: float = 30) -> str:
    """``claude --version`` (``2.1.330 (Claude Code)``): fails if postinstall left the stub."""
    with tempfile.TemporaryDirectory(prefix="claude-home-") as home:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
        result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=timeout_s, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{binary} --version failed: {result.stdout}{result.stderr}")
    return result.stdout.strip()
