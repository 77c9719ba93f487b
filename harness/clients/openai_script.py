"""The client contract for OpenAI-compatible clients: which API the script asks for and the request
bodies every built-in contract client builds for it.

The script's ``api`` is ``"messages"`` (the default), ``"chat"`` (``POST /v1/chat/completions``) or
``"responses"`` (``POST /v1/responses``). The harness also sets OPENAI_BASE_URL (the simulator's
URL with ``/v1``) and OPENAI_API_KEY (the trial's key) beside the ANTHROPIC_* variables.
A turn's user message is its prompt as a string: the simulator reads it as the Messages API's
one text block, so the first turn of a conversation gets the same answer on every API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CHAT_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use", "content_filter": "refusal"}


def api_of(script: Mapping[str, Any], default: str = "chat") -> str:
    """The API an OpenAI client speaks for this script (a Messages script falls back to ``default``)."""
    api = script.get("api", "messages")
    return api if api in ("chat", "responses") else default


def _max_tokens(script: Mapping[str, Any], turn: Mapping[str, Any]) -> int:
    return int(turn.get("max_tokens", script.get("max_tokens", 1024)))


def chat_tools(turn: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": t["name"], "description": t.get("description", ""), "parameters": t.get("input_schema") or {}}}
        for t in turn.get("tools") or []
    ]


def responses_tools(turn: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "name": t["name"], "description": t.get("description", ""), "parameters": t.get("input_schema") or {}, "strict": False}
        for t in turn.get("tools") or []
    ]


def chat_body(script: Mapping[str, Any], turn: Mapping[str, Any], messages: list, stream: bool | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": script.get("model", "gpt-5"), "messages": messages, "max_completion_tokens": _max_tokens(script, turn)}
    if stream is not None:
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
    if turn.get("tools"):
        body["tools"] = chat_tools(turn)
    return body


def responses_body(script: Mapping[str, Any], turn: Mapping[str, Any], items: list, stream: bool | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": script.get("model", "gpt-5"), "input": items, "max_output_tokens": _max_tokens(script, turn)}
    if stream is not None:
        body["stream"] = stream
    if turn.get("tools"):
        body["tools"] = responses_tools(turn)
    return body


def part_prompts(turn: Mapping[str, Any]) -> list[str]:
    """The prompt of each part of a turn, as in :func:`harness.clients.script.turn_conversations`."""
    parts = int(turn.get("parallel", 1))
    return [turn["prompt"] if parts == 1 else f"{turn['prompt']}\n(part {part + 1} of {parts})" for part in range(parts)]
