"""The client side of the client contract: the script a client reads and the requests it builds.

Stdlib only (a cached SDK version runs this file in its own venv, see versions.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any


def request_body(script: Mapping[str, Any], turn: Mapping[str, Any], messages: list, stream: bool | None = None) -> dict[str, Any]:
    """A turn's request as every built-in contract client builds it (the answer depends on it)."""
    body: dict[str, Any] = {
        "model": script.get("model", "claude-sonnet-4-6"),
        "max_tokens": turn.get("max_tokens", script.get("max_tokens", 1024)),
        "messages": messages,
    }
    if stream is not None:
        body["stream"] = stream
    if turn.get("thinking"):
        body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    if turn.get("tools"):
        body["tools"] = turn["tools"]
    if turn.get("tool_choice"):
        body["tool_choice"] = turn["tool_choice"]
    return body


def turn_conversations(turn: Mapping[str, Any], messages: list, pending_tool_results: list) -> list[list]:
    """The conversation of each part of a turn (one unless ``parallel``), as every built-in
    contract client builds it: part k's prompt ends with "(part k+1 of N)"."""
    parts = int(turn.get("parallel", 1))
    conversations = []
    for part in range(parts):
        prompt = turn["prompt"] if parts == 1 else f"{turn['prompt']}\n(part {part + 1} of {parts})"
        conversations.append([*messages, {"role": "user", "content": [*pending_tool_results, {"type": "text", "text": prompt}]}])
    return conversations


def first_request_body(script: Mapping[str, Any], stream: bool | None = None) -> dict[str, Any]:
    """The first request exactly as every built-in contract client builds it."""
    turn = script["turns"][0]
    return request_body(script, turn, [{"role": "user", "content": [{"type": "text", "text": turn["prompt"]}]}], stream)


def read_script(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """What a Python contract client does first."""
    if environ.get("STREAMCHAOS_SCRIPT"):
        return json.loads(environ["STREAMCHAOS_SCRIPT"])
    with open(environ["STREAMCHAOS_SCRIPT_FILE"], encoding="utf-8") as handle:
        return json.load(handle)


def sdk_client_options(script: dict, default_httpx_client: Any) -> dict:
    """Constructor options of an official Python SDK (anthropic or openai): the transport the
    harness asked for (``STREAMCHAOS_HTTP2``), and the script's retries and timeout."""
    mode = os.environ.get("STREAMCHAOS_HTTP2", "")
    options: dict = {}
    if mode == "1":
        options["http_client"] = default_httpx_client(http2=True)
    elif mode == "prior-knowledge":
        options["http_client"] = default_httpx_client(http2=True, http1=False)
    retries = os.environ.get("STREAMCHAOS_MAX_RETRIES", script.get("max_retries"))
    if retries is not None:
        options["max_retries"] = int(retries)
    timeout = os.environ.get("STREAMCHAOS_TIMEOUT_S", script.get("timeout_s"))
    if timeout is not None:
        options["timeout"] = float(timeout)
    return options
