"""The official Python SDK as a contract client.

Reads the conversation from STREAMCHAOS_SCRIPT, performs it with ``anthropic`` (``messages.stream()``
or ``messages.create``), prints one JSON line per turn, exits 0 on success. On an error it prints
``{"turn": i, "error": "<Class>: <message>"}`` and exits 1. Transport: HTTP/1.1 by default;
STREAMCHAOS_HTTP2=1 uses ``DefaultHttpxClient(http2=True)`` (h2 over TLS by ALPN);
STREAMCHAOS_HTTP2=prior-knowledge speaks h2c (``http1=False``). The script's ``max_retries`` and
``timeout_s`` (or STREAMCHAOS_MAX_RETRIES / STREAMCHAOS_TIMEOUT_S) override the SDK defaults.
A turn's ``idle_before_s`` is slept first (a tool running between turns); ``parallel: N`` sends N
requests at once (parts of one turn, each its own conversation) and prints a line per part.
"""

from __future__ import annotations

import re
import sys
import time

import anthropic

from harness.clients.programs import print_parts, send_parts
from harness.clients.script import read_script, request_body, sdk_client_options, turn_conversations


def make_client(script: dict) -> anthropic.Anthropic:
    return anthropic.Anthropic(**sdk_client_options(script, anthropic.DefaultHttpxClient))


def summarize(turn: int, message, started: float) -> dict:
    blocks = [b.model_dump() for b in message.content]
    return {
        "turn": turn,
        "stop_reason": message.stop_reason,
        "text": "".join(b["text"] for b in blocks if b["type"] == "text"),
        "thinking": "".join(b["thinking"] for b in blocks if b["type"] == "thinking"),
        "tool_uses": [{"id": b["id"], "name": b["name"], "input": b["input"]} for b in blocks if b["type"] == "tool_use"],
        "usage": {"input_tokens": message.usage.input_tokens, "output_tokens": message.usage.output_tokens},
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }


def ask(client: anthropic.Anthropic, args: dict, stream: bool):
    try:
        if stream:
            with client.messages.stream(**args) as response:
                return response.get_final_message()
        return client.messages.create(**args)
    except TypeError as error:
        # An older SDK without a parameter of this request (``thinking`` before 0.47): send that
        # field in ``extra_body``, as the SDK documents for fields it does not know yet.
        found = re.search(r"unexpected keyword argument '(\w+)'", str(error))
        if not found or found.group(1) not in args:
            raise
        args = dict(args)
        args["extra_body"] = {**(args.get("extra_body") or {}), found.group(1): args.pop(found.group(1))}
        return ask(client, args, stream)


def main() -> int:
    script = read_script()
    client = make_client(script)
    messages: list = []
    pending_tool_results: list = []
    for index, turn in enumerate(script["turns"]):
        time.sleep(float(turn.get("idle_before_s", 0)))
        conversations = turn_conversations(turn, messages, pending_tool_results)
        started = time.monotonic()
        outcomes = send_parts(ask, [(client, request_body(script, turn, conversation), turn.get("stream", True)) for conversation in conversations])
        if not print_parts(index, outcomes, summarize, started, lambda error: f"{type(error).__name__}: {error}"):
            return 1
        message = outcomes[0]
        messages = conversations[0] + [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]}]
        pending_tool_results = [{"type": "tool_result", "tool_use_id": b.id, "content": "ok"} for b in message.content if b.type == "tool_use"]
    return 0


if __name__ == "__main__":
    sys.exit(main())
