"""The harness side of the client contract: launch a client, read what it printed.

The harness sets ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY (one key per trial), SSL_CERT_FILE and
NODE_EXTRA_CA_CERTS (the simulator's CA), OPENAI_BASE_URL (``.../v1``) and OPENAI_API_KEY for
OpenAI-compatible clients, and STREAMCHAOS_SCRIPT: what the client is to do (the conversation as
JSON; its ``api`` says which API to speak, see openai_script.py). A script over 64 KiB is written
to a file named by STREAMCHAOS_SCRIPT_FILE instead. The client prints each turn's final answer, as a JSON
line (``{"turn": i, "text": ...}``) or as plain text, and exits 0 on success. It runs in its own
process group, killed whole at the deadline, so nothing it spawned outlives the trial.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.processes import die_with_parent, stop

KILL_GRACE_S = 2.0  # a client's time to exit after SIGTERM at the deadline


@dataclass(frozen=True)
class ClientRun:
    command: tuple[str, ...]
    exit_code: int | None  # None: killed at the deadline
    stdout: str
    stderr: str
    started: float  # time.monotonic(), comparable with journal times
    ended: float
    hung: bool
    turns: tuple[dict[str, Any], ...] = field(default=())

    @property
    def elapsed_s(self) -> float:
        return self.ended - self.started

    @property
    def error_line(self) -> str | None:
        """The client's last word on failure: an ``error`` field, else its last non-empty line."""
        for turn in reversed(self.turns):
            if "error" in turn:
                return str(turn["error"])
        for text in (self.stdout, self.stderr):
            lines = [line for line in text.splitlines() if line.strip()]
            if lines and self.exit_code not in (0, None):
                return lines[-1][:500]
        return None


SCRIPT_IN_ENV_LIMIT = 64 * 1024  # one environment string may not exceed 128 KiB on Linux


def contract_env(
    base_url: str,
    api_key: str,
    script: Mapping[str, Any],
    ca_file: str | None,
    extra: Mapping[str, str] | None = None,
    script_dir: str | os.PathLike | None = None,
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANTHROPIC_", "STREAMCHAOS_", "OPENAI_"))}
    env.update(
        {
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": api_key,
            "OPENAI_BASE_URL": base_url.rstrip("/") + "/v1",  # OpenAI-compatible clients (the script's "api")
            "OPENAI_API_KEY": api_key,
            "NO_PROXY": "127.0.0.1,localhost,::1",
            "no_proxy": "127.0.0.1,localhost,::1",
        }
    )
    encoded = json.dumps(script)
    if len(encoded) <= SCRIPT_IN_ENV_LIMIT:
        env["STREAMCHAOS_SCRIPT"] = encoded
    else:
        handle, path = tempfile.mkstemp(prefix="script-", suffix=".json", dir=script_dir)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(encoded)
        env["STREAMCHAOS_SCRIPT_FILE"] = path
    if ca_file:
        env["SSL_CERT_FILE"] = ca_file
        env["NODE_EXTRA_CA_CERTS"] = ca_file
    env.update(extra or {})
    return env


def run_client(
    command: Sequence[str],
    env: Mapping[str, str],
    deadline_s: float,
    cwd: str | None = None,
    on_start: Callable[[int], None] | None = None,
    stdin: bytes | None = None,
) -> ClientRun:
    """Run to completion or to the deadline; on the deadline kill the whole process group.
    ``on_start`` gets the process group id at once (so an interrupted run can kill it too);
    ``stdin`` is written to the client's standard input (else it reads /dev/null)."""
    started = time.monotonic()
    process = subprocess.Popen(
        list(command),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )
    if on_start is not None:
        on_start(process.pid)
    hung = False
    try:
        stdout, stderr = process.communicate(input=stdin, timeout=deadline_s)
    except subprocess.TimeoutExpired:
        hung = True
        stop(process, group=process.pid, grace_s=KILL_GRACE_S)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        stop(group=process.pid, first=signal.SIGKILL)  # anything the client left behind in its group
    ended = time.monotonic()
    out = stdout.decode("utf-8", "replace")
    return ClientRun(
        command=tuple(command),
        exit_code=None if hung else process.returncode,
        stdout=out,
        stderr=stderr.decode("utf-8", "replace"),
        started=started,
        ended=ended,
        hung=hung,
        turns=parse_turns(out),
    )


def parse_turns(stdout: str) -> tuple[dict[str, Any], ...]:
    """JSON lines with a ``turn`` field; plain text becomes one turn with that text."""
    turns: list[dict[str, Any]] = []
    plain: list[str] = []
    for line in stdout.splitlines():
        stripped = line.strip()
        if stripped.startswith("{"):
            try:
                value = json.loads(stripped)
            except ValueError:
                value = None
            if isinstance(value, dict) and "turn" in value:
                turns.append(value)
                continue
        plain.append(line)
    if not turns and any(line.strip() for line in plain):
        turns.append({"turn": 0, "text": "\n".join(plain).strip()})
    return tuple(turns)
