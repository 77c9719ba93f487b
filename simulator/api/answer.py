"""The deterministic answer: a pure function of (seed, request).

Every retry of a conversation gets the same answer, so the harness can tell a complete answer
from a truncated, duplicated or corrupted one by comparing it with :func:`generate`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .request import MessagesRequest

VOCABULARY = (
    "stream token socket packet frame header retry backoff jitter budget window reset "
    "timeout latency buffer signal client server proxy channel request answer model "
    "network route gateway session context thinking careful steady quiet sudden late "
    "early partial complete graceful abrupt river mountain ocean forest valley harbor "
    "lantern compass anchor bridge tower garden meadow canyon island summit glacier "
    "the a of and to in for on with from over under between after before while "
    "every each some many few most other same new old long short bright dark warm cool "
    "reads writes sends holds waits drops keeps finds moves turns opens closes starts ends"
).split()

PREAMBLE_WORDS = 8
DEFAULT_THINKING_WORDS = 24


@dataclass(frozen=True, slots=True)
class Block:
    """One content block and the pieces its deltas carry, in order."""

    type: str  # "thinking" | "text" | "tool_use"
    pieces: tuple[str, ...]
    signature: str = ""
    tool_id: str = ""
    tool_name: str = ""

    @property
    def content(self) -> str:
        return "".join(self.pieces)

    def to_message_content(self) -> dict[str, Any]:
        if self.type == "thinking":
            return {"type": "thinking", "thinking": self.content, "signature": self.signature}
        if self.type == "text":
            return {"type": "text", "text": self.content}
        return {"type": "tool_use", "id": self.tool_id, "name": self.tool_name, "input": json.loads(self.content)}


@dataclass(frozen=True, slots=True)
class Answer:
    blocks: tuple[Block, ...]
    stop_reason: str
    input_tokens: int
    output_tokens: int

    @property
    def text(self) -> str:
        return "".join(b.content for b in self.blocks if b.type == "text")

    @property
    def thinking(self) -> str:
        return "".join(b.content for b in self.blocks if b.type == "thinking")

    @property
    def tool_uses(self) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.type == "tool_use")

    def summary(self) -> dict[str, Any]:
        """What the journal keeps, so a client's output can be checked without its request body."""
        return {
            "text": self.text,
            "thinking": self.thinking,
            "tool_uses": [{"id": b.tool_id, "name": b.tool_name, "input": json.loads(b.content)} for b in self.tool_uses],
            "stop_reason": self.stop_reason,
            "output_tokens": self.output_tokens,
            "input_tokens": self.input_tokens,
        }


SLICE_WORDS = 4096  # words generated between two yields of :func:`generate_steps`


def generate(seed: int, request: MessagesRequest, default_words: int) -> Answer:
    return finish(generate_steps(seed, request, default_words))


def finish(steps):
    """Run a ``*_steps`` generator to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def generate_steps(seed: int, request: MessagesRequest, default_words: int):
    """:func:`generate` in slices: yields (None) every :data:`SLICE_WORDS` words, so a server can
    let other streams run while a long answer is made; returns the Answer. Same draws, same
    answer as one go."""
    rng = random.Random(f"{seed}:{request.conversation_digest}")
    budget = request.max_tokens
    blocks: list[Block] = []
    used = 0
    if request.thinking:
        wanted = request.directives.thinking_words
        wanted = DEFAULT_THINKING_WORDS if wanted is None else wanted
        if request.thinking_budget is not None:
            wanted = min(wanted, request.thinking_budget)
        count = min(wanted, max(0, budget - 1))
        if count:
            words = yield from _words_steps(rng, count)
            pieces = yield from _pieces_steps(rng, words, None)
            blocks.append(Block("thinking", pieces, signature=_signature(seed, words)))
            used += count
    tool = _tool_to_call(request)
    wanted_words = PREAMBLE_WORDS if tool else max(request.directives.words or default_words, request.directives.deltas or 0)
    count = min(wanted_words, budget - used)
    stop = "end_turn"
    if count < wanted_words:
        stop, tool = "max_tokens", None
    if count:
        words = yield from _words_steps(rng, count)
        pieces = yield from _pieces_steps(rng, words, None if tool else request.directives.deltas)
        blocks.append(Block("text", pieces))
        used += count
    if tool:
        name, schema = tool
        tool_input = (
            request.directives.tool_input
            if request.directives.tool == name and request.directives.tool_input is not None
            else _input_for(rng, schema)
        )
        encoded = json.dumps(tool_input, separators=(",", ":"))
        pieces = _json_pieces(rng, encoded)
        blocks.append(Block("tool_use", pieces, tool_id="toolu_" + _base62(rng, 24), tool_name=name))
        used += len(pieces)
        stop = "tool_use"
    return Answer(tuple(blocks), stop, request.input_tokens, max(1, used))


def message_object(answer: Answer, message_id: str, model: str) -> dict[str, Any]:
    """The non-streaming ``Message``: the same answer with content filled in."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [b.to_message_content() for b in answer.blocks],
        "stop_reason": answer.stop_reason,
        "stop_sequence": None,
        "usage": usage(answer.input_tokens, answer.output_tokens),
    }


def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _tool_to_call(request: MessagesRequest) -> tuple[str, Mapping[str, Any]] | None:
    schemas = {t.get("name"): t.get("input_schema") or {} for t in request.tools}
    directives = request.directives
    if directives.tool and request.tool_results < directives.tool_turns:
        return directives.tool, schemas.get(directives.tool, {})
    choice = request.tool_choice or {}
    if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
        return choice["name"], schemas.get(choice["name"], {})
    if choice.get("type") == "any" and request.tools:
        first = request.tools[0].get("name")
        if isinstance(first, str):
            return first, schemas.get(first, {})
    return None


def _words(rng: random.Random, count: int) -> list[str]:
    return finish(_words_steps(rng, count))


def _words_steps(rng: random.Random, count: int):
    words: list[str] = []
    sentence_left = 0
    for number in range(count):
        if number and number % SLICE_WORDS == 0:
            yield
        word = rng.choice(VOCABULARY)
        if sentence_left == 0:
            word = word.capitalize()
            sentence_left = rng.randint(6, 12)
        sentence_left -= 1
        if sentence_left == 0:
            word += "."
        words.append(word)
    return words


def _pieces_steps(rng: random.Random, words: list[str], deltas: int | None):
    """Group words into delta pieces (1-3 words each, or exactly ``deltas`` pieces); each piece
    is joined at once (no list per group survives: a long answer leaves the GC little to scan)."""
    pieces: list[str] = []
    if deltas:
        deltas = min(deltas, len(words))
        for i in range(deltas):
            if i and i % SLICE_WORDS == 0:
                yield
            group = " ".join(words[round(i * len(words) / deltas) : round((i + 1) * len(words) / deltas)])
            pieces.append(group if i == 0 else " " + group)
    else:
        index = 0
        while index < len(words):
            if index and len(pieces) % SLICE_WORDS == 0:
                yield
            size = rng.randint(1, 3)
            group = " ".join(words[index : index + size])
            pieces.append(group if index == 0 else " " + group)
            index += size
    return tuple(pieces)


def _json_pieces(rng: random.Random, encoded: str) -> tuple[str, ...]:
    pieces, index = [], 0
    while index < len(encoded):
        size = rng.randint(4, 16)
        pieces.append(encoded[index : index + size])
        index += size
    return tuple(pieces) or ("{}",)


def _input_for(rng: random.Random, schema: Mapping[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping):
        return {}
    result: dict[str, Any] = {}
    for name, spec in properties.items():
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        if kind == "integer":
            result[name] = rng.randint(1, 100)
        elif kind == "number":
            result[name] = rng.randint(1, 1000) / 10
        elif kind == "boolean":
            result[name] = rng.random() < 0.5
        elif kind == "array":
            result[name] = _words(rng, 2)
        else:
            result[name] = " ".join(_words(rng, 3)).rstrip(".")
    return result


def _signature(seed: int, words: list[str]) -> str:
    digest = hashlib.sha512(f"{seed}:{' '.join(words)}".encode()).digest()
    return base64.b64encode(digest + digest[:32]).decode()


def _base62(rng: random.Random, length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(rng.choice(alphabet) for _ in range(length))
