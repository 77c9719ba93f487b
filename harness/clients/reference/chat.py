"""Chat Completions for the reference client: its request, and its chunks read as the Messages
events the reference client's :class:`~harness.clients.reference.accumulator.Accumulator` builds from.

The retry logic, watchdog, pool and transcript stay the reference client's own: only the wire
format differs. A stream is complete at ``data: [DONE]`` (a clean end before it is an incomplete
answer, retried like a missing ``message_stop``); a chunk with ``error`` is an in-stream error,
retryable for ``server_error`` and rate limits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from harness.clients import openai_script
from harness.clients.reference.accumulator import Accumulator
from harness.clients.reference.failures import MalformedStream, StreamErrorEvent
from simulator import sse

FINISH = openai_script.CHAT_FINISH
RETRYABLE_TYPES = frozenset({"server_error", "requests", "rate_limit_exceeded", "timeout", "overloaded"})


def chat_messages(messages: list) -> list[dict[str, Any]]:
    """The reference client's Messages-form conversation as Chat Completions messages (the
    simulator reads them back as the same conversation, so the answer is the same)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
            continue
        texts = [{"type": "text", "text": b["text"]} for b in content if b.get("type") == "text"]
        if message["role"] == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": "".join(t["text"] for t in texts) or None}
            calls = [
                {"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": json.dumps(b.get("input", {}))}}
                for b in content
                if b.get("type") == "tool_use"
            ]
            if calls:
                item["tool_calls"] = calls
            out.append(item)
            continue
        for block in content:
            if block.get("type") == "tool_result":
                out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": block.get("content", "")})
        if texts:
            out.append({"role": "user", "content": texts})
    return out


def request_body(script: Mapping[str, Any], turn: Mapping[str, Any], messages: list) -> dict[str, Any]:
    return openai_script.chat_body(script, turn, chat_messages(messages), stream=bool(turn.get("stream", True)))


class ChatAccumulator(Accumulator):
    """Feeds the Messages accumulator from Chat Completions chunks."""

    def __init__(self, on_delta: Callable[[str, str], None] | None = None) -> None:
        super().__init__(on_delta)
        self._open: dict[str, int] = {}  # "text" or "tool:<index>" -> block index
        self._finished = False

    def apply(self, event: sse.Event) -> None:
        self.events += 1
        if event.data.strip() == "[DONE]":
            self._close_all()
            self.stopped = self._finished
            if not self._finished:
                raise MalformedStream("[DONE] before any finish_reason", mid_stream=True)
            return
        try:
            data = json.loads(event.data)
        except ValueError:
            raise MalformedStream(f"unreadable JSON in a chunk: {event.data[:80]!r}", mid_stream=True) from None
        try:
            self._chunk(data)
        except (KeyError, TypeError, AttributeError) as error:
            raise MalformedStream(f"a chunk without {error}", mid_stream=True) from None

    def _chunk(self, data: dict[str, Any]) -> None:
        if isinstance(data.get("error"), dict):
            error = data["error"]
            kind = error.get("code") or error.get("type") or "error"
            raise StreamErrorEvent(
                f"error chunk {kind}: {error.get('message', '')}",
                retryable=bool({error.get("type"), error.get("code")} & RETRYABLE_TYPES),
                mid_stream=True,
            )
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.input_tokens = usage.get("prompt_tokens", self.input_tokens)
            self.output_tokens = usage.get("completion_tokens", self.output_tokens)
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                index = self._block("text", {"type": "text", "text": ""})
                self._apply("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": delta["content"]}})
            for call in delta.get("tool_calls") or []:
                key = f"tool:{call['index']}"
                function = call.get("function") or {}
                if key not in self._open:
                    self._close("text")
                    self._block(key, {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""), "input": {}})
                if function.get("arguments"):
                    self._apply(
                        "content_block_delta",
                        {"index": self._open[key], "delta": {"type": "input_json_delta", "partial_json": function["arguments"]}},
                    )
            if choice.get("finish_reason"):
                self._close_all()
                self._finished = True
                self.stop_reason = FINISH.get(choice["finish_reason"], choice["finish_reason"])

    def _block(self, key: str, start: dict[str, Any]) -> int:
        if key not in self._open:
            index = len(self.blocks)
            self._open[key] = index
            self._apply("content_block_start", {"index": index, "content_block": start})
        return self._open[key]

    def _close(self, key: str) -> None:
        index = self._open.pop(key, None)
        if index is not None:
            self._apply("content_block_stop", {"index": index})

    def _close_all(self) -> None:
        for key in list(self._open):
            self._close(key)

    @classmethod
    def from_message(cls, message: Mapping[str, Any], on_delta: Callable[[str, str], None] | None = None) -> Accumulator:
        """A non-streaming ``chat.completion``, as the Message the base class reads."""
        try:
            choice = message["choices"][0]
            reply = choice["message"]
            content: list[dict[str, Any]] = [{"type": "text", "text": reply["content"]}] if reply.get("content") else []
            for call in reply.get("tool_calls") or []:
                arguments = call["function"].get("arguments") or "{}"
                content.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": json.loads(arguments)})
            usage = message.get("usage") or {}
            translated = {
                "content": content,
                "stop_reason": FINISH.get(choice.get("finish_reason"), choice.get("finish_reason")),
                "usage": {"input_tokens": usage.get("prompt_tokens", 0), "output_tokens": usage.get("completion_tokens", 0)},
            }
        except (KeyError, TypeError, IndexError, ValueError) as error:
            raise MalformedStream(f"a chat.completion without {error}") from None
        return Accumulator.from_message(translated, on_delta)
