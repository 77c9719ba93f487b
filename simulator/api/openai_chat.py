"""``POST /v1/chat/completions``: the same answer as the Messages API, as Chat Completions chunks.

A stream is ``data: {chunk}`` lines with no event name: a first chunk with the role, one chunk
per text piece (``choices[0].delta.content``), the tool call in pieces (``delta.tool_calls``: the
first with id, type and name, then ``function.arguments`` fragments), a chunk with
``finish_reason``, with ``stream_options.include_usage`` a last chunk with ``choices: []`` and
``usage`` (and ``usage: null`` on the others), then ``data: [DONE]``.

Each chunk is a :class:`WireEvent` whose name is the role it plays in the Messages stream
(``content_block_start``, ``content_block_delta``, ``message_delta``, ``message_stop``), so the fault
plan's triggers (``events``, ``block``) and the pacing count chunks with no change.
There is no reasoning in Chat Completions: a request never gets a thinking block.
"""

from __future__ import annotations

from typing import Any

from .answer import Answer
from .errors import invalid
from .events import WireEvent
from .openai_common import (
    functions_as_tools,
    merge_turns,
    messages_request,
    now,
    positive_int,
    require_bool,
    require_model,
    sse_data,
    stream_error_object,
    text_blocks,
    tool_choice_of,
    tool_result_block,
    tool_use_block,
)
from .request import MessagesRequest, parse_json

PATH = "/v1/chat/completions"
FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls", "stop_sequence": "stop"}
FINGERPRINT = "fp_streamchaos"


def parse(body: bytes) -> tuple[MessagesRequest, bool]:
    """The request as the generator reads it, and whether usage is asked for in the stream."""
    data = parse_json(body)
    model = require_model(data)
    raw = data.get("messages")
    if raw is None:
        raise invalid("Missing required parameter: 'messages'.")
    if not isinstance(raw, list) or not raw:
        raise invalid("Invalid 'messages': expected a non-empty array.")
    turns = []
    for index, message in enumerate(raw):
        path = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid(f"Invalid type for '{path}': expected an object.")
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        if role == "user":
            turns.append({"role": "user", "content": text_blocks(message.get("content"), f"{path}.content", ("text",))})
        elif role == "assistant":
            blocks = text_blocks(message.get("content"), f"{path}.content", ("text", "refusal"))
            for number, call in enumerate(message.get("tool_calls") or []):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    raise invalid(f"Missing required parameter: '{path}.tool_calls[{number}].function'.")
                blocks.append(
                    tool_use_block(call.get("id"), function.get("name"), function.get("arguments"), f"{path}.tool_calls[{number}].function")
                )
            turns.append({"role": "assistant", "content": blocks})
        elif role == "tool":
            turns.append({"role": "user", "content": [tool_result_block(message.get("tool_call_id"), message.get("content"))]})
        else:
            raise invalid(f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'tool', 'function' and 'developer'.")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise invalid("Invalid type for 'stream_options': expected an object.")
    stream = require_bool(data, "stream")
    request = messages_request(
        model,
        positive_int(data, "max_completion_tokens", "max_tokens"),
        merge_turns(turns),
        stream,
        functions_as_tools(data.get("tools"), "tools", nested=True),
        tool_choice_of(data.get("tool_choice"), nested=True),
    )
    return request, bool(options.get("include_usage"))


def call_id(tool_id: str) -> str:
    return "call_" + tool_id.removeprefix("toolu_")


def usage(answer: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def completion(answer: Answer, completion_id: str, model: str) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object."""
    text = answer.text
    message: dict[str, Any] = {"role": "assistant", "content": text if text else None, "refusal": None, "annotations": []}
    calls = [{"id": call_id(b.tool_id), "type": "function", "function": {"name": b.tool_name, "arguments": b.content}} for b in answer.tool_uses]
    if calls:
        message["tool_calls"] = calls
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH.get(answer.stop_reason, "stop")}],
        "usage": usage(answer),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def chunks(answer: Answer, completion_id: str, model: str, include_usage: bool) -> tuple[WireEvent, ...]:
    created = now()

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage_value: Any = None, choices: bool = True) -> bytes:
        payload: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
        }
        if include_usage:
            payload["usage"] = usage_value
        return sse_data(payload)

    blocks = [b for b in answer.blocks if b.type != "thinking"]
    first_kind = "text" if blocks and blocks[0].type == "text" else None
    events = [
        WireEvent("content_block_start" if first_kind else "message_start", first_kind, chunk({"role": "assistant", "content": "", "refusal": None}))
    ]
    tool_index = 0
    for block in blocks:
        if block.type == "text":
            for piece in block.pieces:
                events.append(WireEvent("content_block_delta", "text", chunk({"content": piece}), len(piece.split())))
            continue
        start = {"index": tool_index, "id": call_id(block.tool_id), "type": "function", "function": {"name": block.tool_name, "arguments": ""}}
        events.append(WireEvent("content_block_start", "tool_use", chunk({"tool_calls": [start]})))
        for piece in block.pieces:
            events.append(
                WireEvent("content_block_delta", "tool_use", chunk({"tool_calls": [{"index": tool_index, "function": {"arguments": piece}}]}), 1)
            )
        tool_index += 1
    events.append(WireEvent("message_delta", None, chunk({}, FINISH.get(answer.stop_reason, "stop"))))
    if include_usage:
        events.append(WireEvent("message_delta", None, chunk(None, usage_value=usage(answer), choices=False)))
    events.append(WireEvent("message_stop", None, sse_data("[DONE]")))
    return tuple(events)


def error_chunk(error_type: str, message: str, events_out: int) -> bytes:
    """What an in-stream failure looks like after HTTP 200: a chunk with ``error``, no [DONE]."""
    return sse_data({"error": stream_error_object(error_type, message)})


def completion_id(request_id: str) -> str:
    return "chatcmpl-" + request_id.removeprefix("req_")
