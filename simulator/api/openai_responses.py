"""``POST /v1/responses``: the same answer as the Messages API, as the Responses API's typed events.

A stream is ``event: TYPE`` / ``data: {"type": TYPE, "sequence_number": N, ...}``:
``response.created``, ``response.in_progress``; per text item ``response.output_item.added``,
``response.content_part.added``, ``response.output_text.delta``..., ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done``; per function call
``response.output_item.added``, ``response.function_call_arguments.delta``...,
``response.function_call_arguments.done``, ``response.output_item.done``; then
``response.completed`` (``response.incomplete`` when ``max_output_tokens`` cut the answer).
An in-stream failure is ``event: error`` with ``{"type": "error", "code", "message", "param",
"sequence_number"}`` and the stream ends. Shapes follow the official SDKs' types (openai-python
``ResponseStreamEvent``) and the Vercel AI SDK's zod schemas.

As for Chat Completions, each event's :class:`WireEvent` name is its role in the Messages stream
(``content_block_start`` for an item added, ``content_block_delta`` for a delta,
``content_block_stop`` for the matching ``.done``), so triggers and pacing count it unchanged.
"""

from __future__ import annotations

from typing import Any

from .answer import Answer, Block
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
    sse_typed,
    stream_error_object,
    text_blocks,
    tool_choice_of,
    tool_result_block,
    tool_use_block,
)
from .request import MessagesRequest, parse_json

PATH = "/v1/responses"


def parse(body: bytes) -> MessagesRequest:
    data = parse_json(body)
    model = require_model(data)
    raw = data.get("input")
    if raw is None:
        raise invalid("Missing required parameter: 'input'.")
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise invalid("Invalid 'input': expected a string or a non-empty array of input items.")
    turns = []
    for index, item in enumerate(raw):
        path = f"input[{index}]"
        if not isinstance(item, dict):
            raise invalid(f"Invalid type for '{path}': expected an object.")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                continue
            if role not in ("user", "assistant"):
                raise invalid(f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', and 'user'.")
            turns.append({"role": role, "content": text_blocks(item.get("content"), f"{path}.content", ("input_text", "output_text", "text"))})
        elif kind == "function_call":
            turns.append({"role": "assistant", "content": [tool_use_block(item.get("call_id"), item.get("name"), item.get("arguments"), path)]})
        elif kind == "function_call_output":
            turns.append({"role": "user", "content": [tool_result_block(item.get("call_id"), item.get("output"))]})
        elif kind == "reasoning":
            continue
        else:
            raise invalid(f"Invalid value for '{path}.type': {kind!r} is not supported by this simulator.")
    return messages_request(
        model,
        positive_int(data, "max_output_tokens"),
        merge_turns(turns),
        require_bool(data, "stream"),
        functions_as_tools(data.get("tools"), "tools", nested=False),
        tool_choice_of(data.get("tool_choice"), nested=False),
    )


def _ids(response_id: str, index: int, block: Block) -> tuple[str, str]:
    """(item id, call id) of an output item: stable within a reply."""
    if block.type == "tool_use":
        suffix = block.tool_id.removeprefix("toolu_")
        return f"fc_{suffix}", f"call_{suffix}"
    return f"msg_{response_id.removeprefix('resp_')}{index:02d}", ""


def _item(response_id: str, index: int, block: Block, done: bool) -> dict[str, Any]:
    item_id, call_id = _ids(response_id, index, block)
    status = "completed" if done else "in_progress"
    if block.type == "tool_use":
        return {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "call_id": call_id,
            "name": block.tool_name,
            "arguments": block.content if done else "",
        }
    content = [_part(block.content)] if done else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def usage(answer: Answer) -> dict[str, Any]:
    return {
        "input_tokens": answer.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": answer.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": answer.input_tokens + answer.output_tokens,
    }


def response_object(answer: Answer | None, response_id: str, model: str, max_output_tokens: int, created: int, final: bool) -> dict[str, Any]:
    blocks = [b for b in answer.blocks if b.type != "thinking"] if answer is not None else []
    cut = final and answer is not None and answer.stop_reason == "max_tokens"
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": ("incomplete" if cut else "completed") if final else "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "instructions": None,
        "max_output_tokens": max_output_tokens,
        "model": model,
        "output": [_item(response_id, i, b, True) for i, b in enumerate(blocks)] if final else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage(answer) if final and answer is not None else None,
        "metadata": {},
    }


def events(answer: Answer, response_id: str, model: str, max_output_tokens: int) -> tuple[WireEvent, ...]:
    created = now()
    out: list[WireEvent] = []

    def add(name: str, block: str | None, payload: dict[str, Any], tokens: int = 0) -> None:
        payload["sequence_number"] = len(out)
        out.append(WireEvent(name, block, sse_typed(payload), tokens))

    add("message_start", None, {"type": "response.created", "response": response_object(None, response_id, model, max_output_tokens, created, False)})
    add("ping", None, {"type": "response.in_progress", "response": response_object(None, response_id, model, max_output_tokens, created, False)})
    blocks = [b for b in answer.blocks if b.type != "thinking"]
    for index, block in enumerate(blocks):
        kind = block.type
        item_id, _ = _ids(response_id, index, block)
        add(
            "content_block_start",
            kind,
            {"type": "response.output_item.added", "output_index": index, "item": _item(response_id, index, block, False)},
        )
        if kind == "text":
            where = {"item_id": item_id, "output_index": index, "content_index": 0}
            add("content_part", kind, {"type": "response.content_part.added", **where, "part": _part("")})
            for piece in block.pieces:
                add("content_block_delta", kind, {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}, len(piece.split()))
            add("content_block_stop", kind, {"type": "response.output_text.done", **where, "text": block.content, "logprobs": []})
            add("content_part", kind, {"type": "response.content_part.done", **where, "part": _part(block.content)})
        else:
            where = {"item_id": item_id, "output_index": index}
            for piece in block.pieces:
                add("content_block_delta", kind, {"type": "response.function_call_arguments.delta", **where, "delta": piece}, 1)
            add(
                "content_block_stop",
                kind,
                {"type": "response.function_call_arguments.done", **where, "name": block.tool_name, "arguments": block.content},
            )
        add("output_item_done", kind, {"type": "response.output_item.done", "output_index": index, "item": _item(response_id, index, block, True)})
    final = response_object(answer, response_id, model, max_output_tokens, created, True)
    add("message_stop", None, {"type": "response.incomplete" if final["status"] == "incomplete" else "response.completed", "response": final})
    return tuple(out)


def error_event(error_type: str, message: str, events_out: int) -> bytes:
    """``event: error`` as the SDKs type it (ResponseErrorEvent), numbered after what was sent."""
    error = stream_error_object(error_type, message)
    return sse_typed({"type": "error", "code": error["code"] or error["type"], "message": message, "param": None, "sequence_number": events_out})


def response_id(request_id: str) -> str:
    return "resp_" + request_id.removeprefix("req_")
