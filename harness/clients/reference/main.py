"""The reference client as a program: the strategy and transport from the environment, the
script's turns one after another, one contract line per turn (see the package docstring)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TextIO

from harness.clients import script as client_script
from harness.clients.reference.client import ReferenceClient, request_body
from harness.clients.reference.failures import Failure
from harness.clients.reference.pool import http_client_factory
from harness.measure import strategies


def strategy_from_env(environ: Mapping[str, str]) -> strategies.Strategy:
    strategy = strategies.get(environ.get("STREAMCHAOS_STRATEGY") or "sdk-default")
    scale = environ.get("STREAMCHAOS_TIME_SCALE")
    if scale:
        strategy = strategies.scaled(strategy, float(scale))
    # Kernel timers are real time and never scaled; these set them directly (tests with short NATs).
    if environ.get("STREAMCHAOS_KEEPALIVE_IDLE_S"):
        idle = int(environ["STREAMCHAOS_KEEPALIVE_IDLE_S"])
        strategy = replace(strategy, keepalive_idle_s=idle, keepalive_interval_s=idle)
    if environ.get("STREAMCHAOS_USER_TIMEOUT_S"):
        strategy = replace(strategy, user_timeout_s=float(environ["STREAMCHAOS_USER_TIMEOUT_S"]))
    return strategy


def live_sink(target: str | None) -> tuple[Callable[[str], None] | None, TextIO | None]:
    if not target:
        return None, None
    # Open for the whole conversation and handed back: converse() closes it when the client is done.
    handle = sys.stderr if target == "stderr" else open(target, "a", encoding="utf-8")  # noqa: SIM115

    def write(text: str) -> None:
        handle.write(text)
        handle.flush()

    return write, (None if handle is sys.stderr else handle)


async def converse(script: Mapping[str, Any], environ: Mapping[str, str], out: TextIO = sys.stdout) -> int:
    strategy = strategy_from_env(environ)
    timeout = float(environ.get("STREAMCHAOS_TIMEOUT_S") or script.get("timeout_s") or 600.0)
    factory = http_client_factory(
        timeout, environ.get("STREAMCHAOS_HTTP2", ""), environ.get("SSL_CERT_FILE") or None, strategies.socket_options(strategy), strategy.pool_idle_s
    )
    live, live_file = live_sink(environ.get("STREAMCHAOS_LIVE"))

    def log(line: str) -> None:
        print(f"[ref {strategy.name}] {line}", file=sys.stderr, flush=True)

    client = ReferenceClient(
        strategy, environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com"), environ.get("ANTHROPIC_API_KEY", ""), factory, live=live, log=log
    )
    if script.get("api") not in (None, "messages", "chat"):
        raise SystemExit(f"the reference client speaks the messages and chat APIs, not {script.get('api')!r}")
    client.api = script.get("api") or "messages"
    messages: list = []
    pending_tool_results: list = []
    try:
        for index, turn in enumerate(script["turns"]):
            await asyncio.sleep(float(turn.get("idle_before_s", 0)))
            conversations = client_script.turn_conversations(turn, messages, pending_tool_results)
            parts = len(conversations)
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(
                    client.ask(request_body(script, turn, conversation), f"turn {index}{f' part {p}' if parts > 1 else ''}: ")
                    for p, conversation in enumerate(conversations)
                ),
                return_exceptions=True,
            )
            for part, outcome in enumerate(outcomes):
                if isinstance(outcome, Failure):
                    line = {"turn": index, "error": outcome.line(strategy.max_attempts)}
                elif isinstance(outcome, BaseException):
                    line = {"turn": index, "error": f"{type(outcome).__name__}: {outcome}"}
                else:
                    line = outcome.line(index, started)
                if parts > 1:
                    line["part"] = part
                print(json.dumps(line), file=out, flush=True)
            answers = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
            if len(answers) < len(outcomes):
                return 1
            answer = answers[0]
            messages = conversations[0] + [{"role": "assistant", "content": answer.acc.assistant_content()}]
            pending_tool_results = [{"type": "tool_result", "tool_use_id": use["id"], "content": "ok"} for use in answer.acc.tool_uses()]
    finally:
        await client.aclose()
        if live_file is not None:
            live_file.close()
    return 0


def main() -> int:
    script = client_script.read_script()
    return asyncio.run(converse(script, os.environ))


if __name__ == "__main__":
    sys.exit(main())
