"""The streaming event sequence of an answer, encoded once.

Events carry their name and the block they belong to, so a fault can be placed "after event N"
or "inside the thinking block" without re-parsing bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .. import sse
from .answer import Answer, Block, usage

PING = sse.encode("ping", '{"type": "ping"}')


@dataclass(frozen=True, slots=True)
class WireEvent:
    name: str
    block: str | None  # "thinking" | "text" | "tool_use" while inside a block
    data: bytes
    tokens: int = 0  # output tokens a delta carries (words of text or thinking, one per JSON piece)


def message_start(answer: Answer, message_id: str, model: str) -> WireEvent:
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage(answer.input_tokens, 1),
    }
    return WireEvent("message_start", None, sse.encode("message_start", {"type": "message_start", "message": message}))


def body_events(answer: Answer, ping_every: int | None) -> tuple[WireEvent, ...]:
    """Everything after ``message_start``: a ping, the blocks, ``message_delta``, ``message_stop``."""
    return tuple(iter_body_events(answer, ping_every))


def iter_body_events(answer: Answer, ping_every: int | None) -> Iterator[WireEvent]:
    """:func:`body_events` one at a time, encoded as they are asked for (long answers are
    written this way, a slice at a time, never held whole)."""
    yield WireEvent("ping", None, PING)
    for index, block in enumerate(answer.blocks):
        yield from _block_events(index, block, ping_every)
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": answer.stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": answer.output_tokens},
    }
    yield WireEvent("message_delta", None, sse.encode("message_delta", delta))
    yield WireEvent("message_stop", None, sse.encode("message_stop", {"type": "message_stop"}))


def count_body_events(answer: Answer, ping_every: int | None) -> int:
    """``len(body_events(answer, ping_every))`` without encoding them."""
    total = 3
    for block in answer.blocks:
        pieces = len(block.pieces)
        total += 2 + pieces + (pieces // ping_every if ping_every else 0) + (1 if block.type == "thinking" else 0)
    return total


def _block_events(index: int, block: Block, ping_every: int | None) -> Iterator[WireEvent]:
    start: dict[str, Any]
    if block.type == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        delta_type, field = "thinking_delta", "thinking"
    elif block.type == "text":
        start = {"type": "text", "text": ""}
        delta_type, field = "text_delta", "text"
    else:
        start = {"type": "tool_use", "id": block.tool_id, "name": block.tool_name, "input": {}}
        delta_type, field = "input_json_delta", "partial_json"
    kind = block.type
    yield WireEvent(
        "content_block_start", kind, sse.encode("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
    )
    # What sse.encode makes of {"type": "content_block_delta", "index": i, "delta": {...}},
    # around json.dumps of the piece: the same bytes, several times faster on long answers.
    prefix = (
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"%s","%s":' % (index, delta_type, field)
    ).encode()
    for number, piece in enumerate(block.pieces, start=1):
        tokens = len(piece.split()) if field != "partial_json" else 1
        yield WireEvent("content_block_delta", kind, prefix + json.dumps(piece).encode() + b"}}\n\n", tokens)
        if ping_every and number % ping_every == 0:
            yield WireEvent("ping", kind, PING)
    if block.type == "thinking":
        payload = {"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": block.signature}}
        yield WireEvent("content_block_delta", kind, sse.encode("content_block_delta", payload))
    yield WireEvent("content_block_stop", kind, sse.encode("content_block_stop", {"type": "content_block_stop", "index": index}))
