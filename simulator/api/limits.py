"""The simulator's input limits, in one place (the README's "Limits" section lists them).

Every limit answers with a clear 400 ``invalid_request_error`` naming what is over, never a
crash: a fake that one request can stop is no use as a CI gate.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import invalid

MAX_JSON_DEPTH = 64  # nesting of arrays/objects in any JSON the simulator reads
MAX_WORDS = 1_000_000  # @sc words, deltas, thinking_words: one answer's length
MAX_TOOL_TURNS = 1_000  # @sc tool_turns
MAX_PING_EVERY = 1_000_000  # @sc ping_every
MAX_TOKENS = 100_000_000  # max_tokens of a request (answers are bounded by MAX_WORDS anyway)
MAX_DIRECTIVE_VALUE_DIGITS = 12  # a longer run of digits is refused before int() sees it

DIRECTIVE_MAXIMA = {
    "words": MAX_WORDS,
    "deltas": MAX_WORDS,
    "thinking_words": MAX_WORDS,
    "tool_turns": MAX_TOOL_TURNS,
    "ping_every": MAX_PING_EVERY,
}


class TooDeep(ValueError):
    pass


def json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if no array/object in ``value`` is nested more than ``limit`` levels (iterative:
    a hostile value cannot exhaust the stack here)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > limit:
                return False
            stack.extend((child, depth + 1) for child in item.values() if isinstance(child, (dict, list)))
        elif isinstance(item, list):
            if depth > limit:
                return False
            stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return True


def loads_bounded(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses nesting deeper than ``limit`` and non-finite numbers
    (``NaN``, ``Infinity``, ``1e999``) with :class:`ValueError` (:class:`TooDeep` for depth)."""
    try:
        value = json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise TooDeep(f"JSON nested more than {limit} levels") from None
    if not json_depth_ok(value, limit):
        raise TooDeep(f"JSON nested more than {limit} levels")
    return value


def non_finite_path(data: bytes | str) -> str | None:
    """Where the first ``NaN`` / ``Infinity`` / ``1e999`` of a JSON text is (``faults[0].trigger.value``),
    so a refusal can name the key; None if there is none or the text is not JSON at all."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    stack: list[tuple[Any, str]] = [(value, "")]
    for _ in range(1_000_000):  # bounded: a body is at most a few MiB
        if not stack:
            return None
        item, path = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return path or "(the body)"
        if isinstance(item, dict):
            stack.extend((child, f"{path}.{key}" if path else str(key)) for key, child in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in reversed(list(enumerate(item))))
    return None


def loads_request_json(data: bytes | str, what: str, parse_error: str) -> Any:
    """JSON of a request: 400 with the real API's parse message, or naming the depth limit."""
    try:
        return loads_bounded(data)
    except TooDeep:
        raise invalid(f"{what}: JSON nested more than {MAX_JSON_DEPTH} levels (the simulator's limit)") from None
    except (ValueError, UnicodeDecodeError):
        raise invalid(parse_error) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a finite number")
    return value
