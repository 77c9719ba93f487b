"""The official Python SDK as a contract client.

Reads the conversation from STREAMCHAOS_PLAN, performs it with ``anthropic`` (``messages.stream()``
or ``messages.create``), prints one JSON line per turn, exits 0 on success. On an error it prints
``{"turn": i, "error": "<Class>: <message>"}`` and exits 1. Transport: HTTP/1.1 by default;
STREAMCHAOS_HTTP2=1 uses ``DefaultHttpxClient(http2=True)`` (h2 over TLS by ALPN);
STREAMCHAOS_HTTP2=prior-knowledge speaks h2c (``http1=False``). STREAMCHAOS_MAX_RETRIES and
STREAMCHAOS_TIMEOUT_S override the SDK defaults.
"""

from __future__ import annotations

import json
import os
import sys
import time

import anthropic


def make_client() -> anthropic.Anthropic:
    mode = os.environ.get("STREAMCHAOS_HTTP2", "")
    kwargs = {}
    if mode == "1":
        kwargs["http_client"] = anthropic.DefaultHttpxClient(http2=True)
    elif mode == "prior-knowledge":
        kwargs["http_client"] = anthropic.DefaultHttpxClient(http2=True, http1=False)
    if "STREAMCHAOS_MAX_RETRIES" in os.environ:
        kwargs["max_retries"] = int(os.environ["STREAMCHAOS_MAX_RETRIES"])
    if "STREAMCHAOS_TIMEOUT_S" in os.environ:
        kwargs["timeout"] = float(os.environ["STREAMCHAOS_TIMEOUT_S"])
    return anthropic.Anthropic(**kwargs)


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


def request_args(plan: dict, turn: dict, messages: list) -> dict:
    args = {"model": plan.get("model", "claude-sonnet-4-6"), "max_tokens": turn.get("max_tokens", plan.get("max_tokens", 1024)), "messages": messages}
    if turn.get("thinking"):
        args["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    if turn.get("tools"):
        args["tools"] = turn["tools"]
    if turn.get("tool_choice"):
        args["tool_choice"] = turn["tool_choice"]
    return args


def main() -> int:
    plan = json.loads(os.environ["STREAMCHAOS_PLAN"])
    client = make_client()
    messages: list = []
    pending_tool_results: list = []
    for index, turn in enumerate(plan["turns"]):
        content = [*pending_tool_results, {"type": "text", "text": turn["prompt"]}]
        messages.append({"role": "user", "content": content})
        started = time.monotonic()
        try:
            if turn.get("stream", True):
                with client.messages.stream(**request_args(plan, turn, messages)) as stream:
                    message = stream.get_final_message()
            else:
                message = client.messages.create(**request_args(plan, turn, messages))
        except Exception as error:  # the contract reports every failure the same way
            print(json.dumps({"turn": index, "error": f"{type(error).__name__}: {error}"}), flush=True)
            return 1
        print(json.dumps(summarize(index, message, started)), flush=True)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]})
        pending_tool_results = [
            {"type": "tool_result", "tool_use_id": b.id, "content": "ok"} for b in message.content if b.type == "tool_use"
        ]
    return 0


if __name__ == "__main__":
    sys.exit(main())
