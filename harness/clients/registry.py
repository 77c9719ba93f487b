"""The built-in clients and the generic command client, behind one small interface.

Each adapter turns a trial (base URL, key, CA, conversation plan, deadline, a scratch directory)
into an invocation, says whether its client is installed, which HTTP versions it speaks, and
what retry policy its documentation declares (shown beside the backoff the server measured).
"""

from __future__ import annotations

import functools
import json
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.measure.strategies import STRATEGIES, Strategy, get as get_strategy

from harness.clients.claude_code import CLAUDE_BIN
from harness.clients.contract import contract_env, first_request_body

ROOT = Path(__file__).resolve().parent.parent.parent
JS_DIR = ROOT / "harness" / "clients" / "js"
NODE_BIN = shutil.which("node") or "node"
BUN_BIN = JS_DIR / "node_modules" / ".bin" / "bun"
GO_CLIENT = ROOT / "tools" / "bin" / "streamchaos-go-client"

SDK_POLICY = "2 retries; min(0.5*2^n, 8 s)*(1-0.25U); 408/409/429/5xx and connection errors; never mid-stream"
GO_POLICY = "2 retries; min(0.5*2^n, 8 s) - U*delay/4; 408/409/429/5xx and connection errors; never mid-stream"
CLAUDE_POLICY = "CLAUDE_CODE_MAX_RETRIES (default 10); min(32 s, 0.5*2^(n-1))*(1+0.25U); also 401; mid-stream retried, then a non-streaming fallback"


@dataclass(frozen=True)
class Trial:
    """What an adapter needs to run one trial."""

    base_url: str
    api_key: str
    ca_file: str | None
    plan: Mapping[str, Any]
    deadline_s: float
    workdir: Path


@dataclass(frozen=True)
class Invocation:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None = None
    output: str = "contract"  # "contract" JSON lines | "text" (the final answer) | "sse" (raw stream)
    stdin: bytes | None = None


@dataclass(frozen=True)
class ClientAdapter:
    name: str
    description: str
    protocols: tuple[str, ...]  # HTTP versions it speaks against this simulator
    policy: str
    requires: tuple[Path | str, ...] = ()
    max_turns: int | None = None  # None: any number
    parallel: bool = True
    final_answer_only: bool = False  # prints the last turn's answer only (Claude Code)
    on_by_default: bool = True  # run by `streamchaos run` without --clients (the reference clients are not)
    apis: tuple[str, ...] = ("messages",)  # the APIs it speaks: "messages", "chat", "responses" (a scenario's api)
    missing_hint: str = "run `make setup`, or `streamchaos setup --clients NAME`"  # issue 14: clients install into a user cache too

    def installed(self) -> tuple[bool, str]:
        for item in self.requires:
            if not (Path(item).exists() or shutil.which(str(item))):
                return False, f"{item} not found ({self.missing_hint})"
        return True, ""

    def invocation(self, trial: Trial) -> Invocation:
        raise NotImplementedError

    def speaks(self, transports: tuple[str, ...]) -> bool:
        return any(protocol in transports for protocol in self.protocols)


@dataclass(frozen=True)
class ContractClient(ClientAdapter):
    """A program that reads STREAMCHAOS_PLAN and prints the contract's JSON lines."""

    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def invocation(self, trial: Trial) -> Invocation:
        return Invocation(self.argv, contract_env(trial.base_url, trial.api_key, trial.plan, trial.ca_file, self.env, plan_dir=trial.workdir))


@dataclass(frozen=True)
class CommandClient(ClientAdapter):
    """Any client: a command template with {base_url} {api_key} {ca_file} {plan_file} {prompt};
    the contract's environment is set as well. Output: contract JSON lines or plain text."""

    template: str = ""
    output: str = "contract"

    def invocation(self, trial: Trial) -> Invocation:
        plan_file = trial.workdir / "plan.json"
        plan_file.write_text(json.dumps(trial.plan))
        values = {"base_url": trial.base_url, "api_key": trial.api_key, "ca_file": trial.ca_file or "", "plan_file": str(plan_file),
                  "prompt": trial.plan["turns"][0]["prompt"]}
        argv = tuple(part.format(**values) for part in shlex.split(self.template))
        # Run where streamchaos was started, so the template may use paths relative to it.
        return Invocation(argv, contract_env(trial.base_url, trial.api_key, trial.plan, trial.ca_file, plan_dir=trial.workdir), None, self.output)


@dataclass(frozen=True)
class CurlClient(ClientAdapter):
    """curl streaming one request, no retries: the baseline that never recovers."""

    http2: bool = False

    def invocation(self, trial: Trial) -> Invocation:
        body = first_request_body(trial.plan, stream=True)
        body_file = trial.workdir / "body.json"
        body_file.write_text(json.dumps(body))
        argv = ["curl", "-sS", "-N", "--fail-with-body", "--http2" if self.http2 else "--http1.1",
                "-H", f"x-api-key: {trial.api_key}", "-H", "anthropic-version: 2023-06-01", "-H", "content-type: application/json",
                "--data-binary", f"@{body_file}", f"{trial.base_url}/v1/messages"]
        if trial.ca_file:
            argv[1:1] = ["--cacert", trial.ca_file]
        if trial.plan.get("timeout_s"):
            argv[1:1] = ["--max-time", str(trial.plan["timeout_s"])]
        return Invocation(tuple(argv), contract_env(trial.base_url, trial.api_key, trial.plan, trial.ca_file, plan_dir=trial.workdir), output="sse")


@dataclass(frozen=True)
class ClaudeCodeClient(ClientAdapter):
    """``claude -p``: a multi-turn plan becomes one prompt whose answers are tool_use blocks that
    make Claude Code run ``sleep`` (the idle between turns), then the final text."""

    http2: bool = False

    def invocation(self, trial: Trial) -> Invocation:
        from harness.clients.claude_code import ClaudeCodeOptions, claude_code_command

        turns = trial.plan["turns"]
        prompt = claude_code_prompt(turns)
        options = ClaudeCodeOptions(max_retries=int(trial.plan.get("max_retries", 2)), http2=self.http2,
                                    byte_watchdog_ms=_watchdog_ms(trial.plan))
        command = claude_code_command(prompt, trial.base_url, trial.api_key, trial.ca_file, trial.deadline_s, trial.workdir / "home", options, CLAUDE_BIN)
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


def _watchdog_ms(plan: Mapping[str, Any]) -> int | None:
    timeout = plan.get("timeout_s")
    return None if timeout is None else max(10_000, int(float(timeout) * 1000))


PYTHON = (sys.executable, "-m", "harness.clients.python_sdk_client")
JS_CLIENT = str(JS_DIR / "client.mjs")

BUILT_IN: dict[str, ClientAdapter] = {c.name: c for c in (
    ContractClient("python-sdk", "anthropic (PyPI), HTTP/1.1", ("http/1.1",), SDK_POLICY, argv=PYTHON),
    ContractClient("python-sdk-h2", "anthropic (PyPI), DefaultHttpxClient(http2=True)", ("h2",), SDK_POLICY, argv=PYTHON, env={"STREAMCHAOS_HTTP2": "1"}),
    ContractClient("ts-sdk-node", "@anthropic-ai/sdk on Node 20 (undici), HTTP/1.1", ("http/1.1",), SDK_POLICY, requires=(JS_DIR / "node_modules" / "@anthropic-ai" / "sdk", NODE_BIN), argv=(NODE_BIN, JS_CLIENT)),
    ContractClient("ts-sdk-bun", "@anthropic-ai/sdk on Bun, HTTP/1.1", ("http/1.1",), SDK_POLICY, requires=(BUN_BIN,), argv=(str(BUN_BIN), JS_CLIENT)),
    ContractClient("ts-sdk-bun-h2", "@anthropic-ai/sdk on Bun with its experimental h2 client", ("h2",), SDK_POLICY, requires=(BUN_BIN,), argv=(str(BUN_BIN), JS_CLIENT), env={"BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP2_CLIENT": "1"}),
    ContractClient("go-sdk", "anthropic-sdk-go, h2 over TLS", ("h2",), GO_POLICY, requires=(GO_CLIENT,), argv=(str(GO_CLIENT),)),
    ClaudeCodeClient("claude-code", "Claude Code (npm), Bun fetch, HTTP/1.1", ("http/1.1",), CLAUDE_POLICY, requires=(CLAUDE_BIN,), parallel=False,
                     final_answer_only=True),
    CurlClient("curl", "curl --http1.1, no retries", ("http/1.1",), "no retries", requires=("curl",), max_turns=1, parallel=False),
)}


# -- the reference client, one built-in per retry strategy ------------------------------------------

REFERENCE = (sys.executable, "-m", "harness.clients.reference_client")


@dataclass(frozen=True)
class ReferenceClient(ContractClient):
    """``harness/clients/reference_client.py`` with one retry strategy. Its durations are scaled by
    ``time_scale``; when that is None, by the trial's own scale (the scenario's, or the run's
    override), read from the trial's deadline against the library scenario's."""

    strategy: str = "sdk-default"
    time_scale: float | None = None

    def invocation(self, trial: Trial) -> Invocation:
        env = {**self.env, "STREAMCHAOS_STRATEGY": self.strategy}
        scale = self.time_scale if self.time_scale is not None else _trial_time_scale(trial)
        if scale is not None and scale != 1:
            env["STREAMCHAOS_TIME_SCALE"] = repr(scale)
        return Invocation(self.argv, contract_env(trial.base_url, trial.api_key, trial.plan, trial.ca_file, env, plan_dir=trial.workdir))


def _trial_time_scale(trial: Trial) -> float | None:
    """The runner gives every trial ``scenario.deadline(time_scale)``: the ratio to the scenario's
    unscaled deadline is the scale it ran at. None if the scenario is not in the library."""
    deadline = _library_deadline(str(trial.plan.get("scenario") or ""))
    return trial.deadline_s / deadline if deadline else None


@functools.lru_cache(maxsize=None)
def _library_deadline(name: str) -> float | None:
    if not name:
        return None
    from harness import scenario

    try:
        return scenario.load(scenario.find(name)).deadline_s
    except Exception:
        return None


def strategy_policy(strategy: Strategy) -> str:
    """A strategy in one line, as ``streamchaos clients`` shows a client's declared policy."""
    parts = [f"{strategy.max_attempts} attempt(s)", f"backoff {strategy.backoff} (base {strategy.base_s:g} s, cap {strategy.cap_s:g} s)",
             "mid-stream retried" if strategy.retry_mid_stream else "never mid-stream"]
    if strategy.resume:
        parts.append("resume without duplicates")
    if strategy.idle_timeout_s is not None:
        parts.append(f"idle watchdog {strategy.idle_timeout_s:g} s")
    if strategy.fresh_connection:
        parts.append("fresh connection after a connection failure")
    if strategy.hedge_after_s is not None:
        parts.append(f"hedge after {strategy.hedge_after_s:g} s")
    if strategy.pool_idle_s is not None:
        parts.append(f"idle connections pooled {strategy.pool_idle_s:g} s")
    if strategy.keepalive_idle_s is not None:
        parts.append(f"TCP keepalive {strategy.keepalive_idle_s} s (interval {strategy.keepalive_interval_s} s, {strategy.keepalive_count} probes)")
    if strategy.user_timeout_s is not None:
        parts.append(f"TCP_USER_TIMEOUT {strategy.user_timeout_s:g} s")
    if strategy.budget_max_tokens:
        parts.append(f"retry budget {strategy.budget_max_tokens:g}/{strategy.budget_token_ratio:g}")
    if strategy.throttle_k:
        parts.append(f"adaptive throttling K={strategy.throttle_k:g}")
    return "; ".join(parts)


def reference_client(strategy: str, http2: bool = False, time_scale: float | None = None, name: str | None = None) -> ReferenceClient:
    """The reference client with ``strategy`` (HTTP/1.1, or h2 over TLS by ALPN)."""
    chosen = get_strategy(strategy)
    return ReferenceClient(
        name or f"ref-{strategy}{'-h2' if http2 else ''}",
        f"reference client (httpx{', h2' if http2 else ', HTTP/1.1'}), strategy {strategy}",
        ("h2",) if http2 else ("http/1.1",), strategy_policy(chosen), on_by_default=False, argv=REFERENCE,
        env={"STREAMCHAOS_HTTP2": "1"} if http2 else {}, strategy=strategy, time_scale=time_scale, apis=("messages", "chat"),
    )


BUILT_IN.update({c.name: c for c in (*(reference_client(name) for name in STRATEGIES), reference_client("resilient", http2=True))})


def get(name: str) -> ClientAdapter:
    if name not in BUILT_IN:
        raise KeyError(f"unknown client {name!r}; built in: {', '.join(BUILT_IN)} (or use --client-cmd)")
    return BUILT_IN[name]


def command_client(template: str, name: str = "custom", output: str = "contract", protocols: tuple[str, ...] = ("http/1.1", "h2")) -> CommandClient:
    if output not in ("contract", "text"):
        raise ValueError(f"--client-output must be 'contract' or 'text', not {output!r}")
    try:
        shlex.split(template)
    except ValueError as error:
        raise ValueError(f"--client-cmd: cannot parse {template!r}: {error}") from None
    return CommandClient(name, f"command: {template}", protocols, "declared by the command", template=template, output=output,
                         apis=("messages", "chat", "responses"))


from harness.clients import openai_clients  # noqa: E402,F401 - registers the OpenAI-compatible built-ins (they use the classes above)
