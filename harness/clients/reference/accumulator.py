"""The answer as it streams in: a Messages API message built from its SSE events."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from harness.clients.reference.failures import MalformedStream, StreamErrorEvent
from simulator import sse

RETRYABLE_SSE_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})
CHANNELS = ("thinking", "text")


class Accumulator:
    """Builds the message from its events; calls ``on_delta(channel, piece)`` for text and thinking."""

    def __init__(self, on_delta: Callable[[str, str], None] | None = None) -> None:
        self.on_delta = on_delta or (lambda channel, piece: None)
        self.blocks: dict[int, dict[str, Any]] = {}
        self.json_parts: dict[int, list[str]] = {}
        self.stop_reason: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.stopped = False  # message_stop seen
        self.events = 0

    def apply(self, event: sse.Event) -> None:
        self.events += 1
        if event.name == "ping":
            return
        try:
            data = event.json()
        except ValueError:
            raise MalformedStream(f"unreadable JSON in a {event.name!r} event: {event.data[:80]!r}", mid_stream=True) from None
        try:
            self._apply(event.name, data)
        except (KeyError, TypeError, AttributeError) as error:
            raise MalformedStream(f"a {event.name!r} event without {error}", mid_stream=True) from None

    def _apply(self, name: str, data: dict[str, Any]) -> None:
        if name == "message_start":
            usage = data["message"].get("usage") or {}
            self.input_tokens = usage.get("input_tokens", 0)
            self.output_tokens = usage.get("output_tokens", 0)
        elif name == "content_block_start":
            index, block = data["index"], dict(data["content_block"])
            if block["type"] == "tool_use":
                block["input"] = {}
                self.json_parts[index] = []
            self.blocks[index] = block
        elif name == "content_block_delta":
            block, delta = self.blocks[data["index"]], data["delta"]
            kind = delta["type"]
            if kind == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
                self.on_delta("text", delta["text"])
            elif kind == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
                self.on_delta("thinking", delta["thinking"])
            elif kind == "signature_delta":
                block["signature"] = delta["signature"]
            elif kind == "input_json_delta":
                self.json_parts[data["index"]].append(delta["partial_json"])
        elif name == "content_block_stop":
            index = data["index"]
            if index in self.json_parts:
                raw = "".join(self.json_parts.pop(index))
                try:
                    self.blocks[index]["input"] = json.loads(raw) if raw else {}
                except ValueError:
                    raise MalformedStream(f"tool_use input is not JSON: {raw[:80]!r}", mid_stream=True) from None
        elif name == "message_delta":
            self.stop_reason = data["delta"].get("stop_reason")
            usage = data.get("usage") or {}
            self.output_tokens = usage.get("output_tokens", self.output_tokens)
            if usage.get("input_tokens") is not None:
                self.input_tokens = usage["input_tokens"]
        elif name == "message_stop":
            self.stopped = True
        elif name == "error":
            error = data.get("error") or {}
            kind = error.get("type", "error")
            raise StreamErrorEvent(f"SSE error event {kind}: {error.get('message', '')}", retryable=kind in RETRYABLE_SSE_ERRORS, mid_stream=True)

    @classmethod
    def from_message(cls, message: Mapping[str, Any], on_delta: Callable[[str, str], None] | None = None) -> Accumulator:
        """A non-streaming answer: the Message object, whole."""
        acc = cls(on_delta)
        try:
            for index, block in enumerate(message["content"]):
                acc.blocks[index] = dict(block)
            acc.stop_reason = message.get("stop_reason")
            usage = message.get("usage") or {}
            acc.input_tokens, acc.output_tokens = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
        except (KeyError, TypeError, AttributeError) as error:
            raise MalformedStream(f"a message without {error}") from None
        for block in acc.content():
            for channel in CHANNELS:
                if block["type"] == channel and block.get(channel):
                    acc.on_delta(channel, block[channel])
        acc.stopped = True
        return acc

    def content(self) -> list[dict[str, Any]]:
        return [self.blocks[i] for i in sorted(self.blocks)]

    def channel(self, name: str) -> str:
        return "".join(b.get(name, "") for b in self.content() if b["type"] == name)

    def assistant_content(self) -> list[dict[str, Any]]:
        """The blocks as the next request's assistant message carries them."""
        out = []
        for block in self.content():
            if block["type"] == "thinking":
                out.append({"type": "thinking", "thinking": block.get("thinking", ""), "signature": block.get("signature", "")})
            elif block["type"] == "text":
                out.append({"type": "text", "text": block.get("text", "")})
            elif block["type"] == "tool_use":
                out.append({"type": "tool_use", "id": block["id"], "name": block["name"], "input": block.get("input", {})})
        return out

    def tool_uses(self) -> list[dict[str, Any]]:
        return [{"id": b["id"], "name": b["name"], "input": b.get("input", {})} for b in self.content() if b["type"] == "tool_use"]
