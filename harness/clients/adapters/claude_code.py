"""Claude Code (``@anthropic-ai/claude-code``, pinned in harness/clients/claude_code/package.json).

``claude -p PROMPT`` (the final answer on stdout, exit 0; ``API Error: ...`` and exit 1 on failure)
runs against the simulator with nothing of the developer's: a fresh ``HOME`` (and XDG dirs,
``TMPDIR``) in the trial's directory, only ``PASSED_THROUGH`` of the caller's environment, the
trial's key as ``ANTHROPIC_API_KEY`` (no login), ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (no
telemetry, update or feature-flag calls) and a refusing proxy for any other host, so nothing leaves
the machine. ``--allowedTools Bash`` lets a multi-turn script run as one prompt whose answers are
``tool_use`` blocks that make Claude Code sleep between turns. The script's ``timeout_s`` sets the
byte watchdog (``CLAUDE_BYTE_STREAM_IDLE_TIMEOUT_MS``, clamped by the binary to [10 s, 30 min]):
a stream silent that long (the simulator's ``stall`` fault makes one) is aborted, retried, then
asked again without streaming. ``--dangerously-skip-permissions`` starts as root only with
``IS_SANDBOX=1``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.clients.adapter import CLIENTS_DIR, ClientAdapter, Invocation, Launch

CLAUDE_POLICY = "CLAUDE_CODE_MAX_RETRIES (default 10); min(32 s, 0.5*2^(n-1))*(1+0.25U); also 401; mid-stream retried, then a non-streaming fallback"
PACKAGE_DIR = CLIENTS_DIR / "claude_code"
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
    env.update(
        {
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
        }
    )
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


@dataclass(frozen=True)
class ClaudeCodeClient(ClientAdapter):
    """``claude -p``: a multi-turn script becomes one prompt whose answers are tool_use blocks that
    make Claude Code run ``sleep`` (the idle between turns), then the final text."""

    http2: bool = False

    def invocation(self, launch: Launch) -> Invocation:
        prompt = claude_code_prompt(launch.script["turns"])
        options = ClaudeCodeOptions(
            max_retries=int(launch.script.get("max_retries", 2)), http2=self.http2, byte_watchdog_ms=_watchdog_ms(launch.script)
        )
        command = claude_code_command(
            prompt, launch.base_url, launch.api_key, launch.ca_file, launch.deadline_s, launch.workdir / "home", options, CLAUDE_BIN
        )
        return Invocation(command.argv, command.env, command.cwd, output="text", stdin=command.stdin)


def claude_code_prompt(turns: list[Mapping[str, Any]]) -> str:
    """The first turn's prompt, plus a tool_use per later turn: ``sleep`` for its idle time."""
    prompt = turns[0]["prompt"]
    if len(turns) == 1:
        return prompt
    idle = max(float(t.get("idle_before_s", 0)) for t in turns[1:])
    # Claude Code 2.1.330 refuses a standalone `sleep 30` ("Blocked: standalone sleep 30"; 12 s
    # still runs): long idles sleep in python3, as the seed-002 reproduction did.
    shell = f"sleep {idle:g}" if idle < 10 else f"python3 -c 'import time; time.sleep({idle:g})'"
    command = json.dumps({"command": shell, "description": "wait while the tool runs"}, separators=(",", ":"))
    return f"{prompt}\n@sc tool=Bash tool_turns={len(turns) - 1} input={command}"


def _watchdog_ms(script: Mapping[str, Any]) -> int | None:
    timeout = script.get("timeout_s")
    return None if timeout is None else max(10_000, int(float(timeout) * 1000))


CLIENTS = (
    ClaudeCodeClient(
        "claude-code",
        "Claude Code (npm), Bun fetch, HTTP/1.1",
        ("http/1.1",),
        CLAUDE_POLICY,
        requires=(CLAUDE_BIN,),
        parallel=False,
        final_answer_only=True,
    ),
)
