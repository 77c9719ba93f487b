"""Parsing and validating a Messages API request into a frozen value.

Validation messages copy the real API's (``max_tokens: Field required``) so that clients print
what they would print in production. Directives for the fake travel inside the conversation
itself (lines starting with ``@sc`` in the last user text), so any client can ask for an answer
shape without a special header or SDK option.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, invalid
from .limits import DIRECTIVE_MAXIMA, MAX_DIRECTIVE_VALUE_DIGITS, MAX_JSON_DEPTH, MAX_TOKENS, TooDeep, loads_bounded, loads_request_json

PARSE_ERROR = "There was an error parsing the body of your request. Please check that it is valid JSON."

DIRECTIVE_PREFIX = "@sc"
INT_DIRECTIVES = ("words", "deltas", "thinking_words", "tool_turns", "ping_every")


@dataclass(frozen=True, slots=True)
class Directives:
    """Answer-shape requests embedded in the prompt; every field optional."""

    words: int | None = None
    deltas: int | None = None
    thinking_words: int | None = None
    tool: str | None = None
    tool_input: Any = None
    tool_turns: int = 1
    ping_every: int | None = None


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    max_tokens: int
    messages: tuple[Any, ...]
    stream: bool
    thinking: bool
    thinking_budget: int | None
    tools: tuple[Mapping[str, Any], ...]
    tool_choice: Mapping[str, Any] | None
    directives: Directives
    tool_results: int
    conversation_digest: str
    input_chars: int = field(default=0)

    @property
    def input_tokens(self) -> int:
        """A stable estimate (4 characters a token), enough for usage fields to be plausible."""
        return max(1, self.input_chars // 4)


def parse_json(body: bytes) -> Mapping[str, Any]:
    value = loads_request_json(body, "body", PARSE_ERROR)
    if not isinstance(value, dict):
        raise invalid("Input should be a valid dictionary or object to extract fields from")
    return value


def parse_messages_request(body: bytes) -> MessagesRequest:
    data = parse_json(body)
    model = _require_str(data, "model")
    max_tokens = _require_int(data, "max_tokens", minimum=1)
    if max_tokens > MAX_TOKENS:
        raise invalid(f"max_tokens: Input should be less than or equal to {MAX_TOKENS} (the simulator's limit)")
    messages = _require_messages(data)
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream: Input should be a valid boolean")
    thinking, budget = _thinking(data.get("thinking"))
    tools = data.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise invalid("tools: Input should be a valid list")
    tool_choice = data.get("tool_choice")
    if tool_choice is not None and not isinstance(tool_choice, dict):
        raise invalid("tool_choice: Input should be a valid dictionary or object to extract fields from")
    return conversation_request(model, max_tokens, messages, stream, tuple(tools), tool_choice, thinking, budget)


def conversation_request(
    model: str,
    max_tokens: int,
    messages: list[Any],
    stream: bool,
    tools: tuple,
    tool_choice: Any,
    thinking: bool = False,
    thinking_budget: int | None = None,
) -> MessagesRequest:
    """A request for these validated messages (in Messages form), with what the conversation
    gives: the last user turn's directives, the tool results, the digest and the size."""
    canonical = _canonical(messages)
    return MessagesRequest(
        model=model,
        max_tokens=max_tokens,
        messages=tuple(messages),
        stream=stream,
        thinking=thinking,
        thinking_budget=thinking_budget,
        tools=tools,
        tool_choice=tool_choice,
        directives=parse_directives(_last_user_text(messages)),
        tool_results=_count_tool_results(messages),
        conversation_digest=hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest(),
        input_chars=len(canonical),
    )


def parse_count_tokens_request(body: bytes) -> int:
    data = parse_json(body)
    _require_str(data, "model")
    return max(1, len(_canonical(_require_messages(data))) // 4)


def conversation_digest(messages: list[Any] | tuple[Any, ...]) -> str:
    """What identifies an answer: the conversation only, so a retry, a non-streaming fallback
    or a different ``max_tokens`` ask for the same answer."""
    return hashlib.sha256(_canonical(messages).encode("utf-8", "surrogatepass")).hexdigest()


def _canonical(messages: list[Any] | tuple[Any, ...]) -> str:
    return json.dumps(list(messages), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_directives(text: str) -> Directives:
    """The ``@sc`` lines of ``text``; ApiError 400 naming the directive on anything invalid."""
    values: dict[str, Any] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith(DIRECTIVE_PREFIX + " "):
            continue
        rest = line[len(DIRECTIVE_PREFIX) + 1 :]
        head, marker, raw_input = rest.partition("input=")
        try:
            words = shlex.split(head)
        except ValueError:
            raise invalid(f"@sc directive: cannot parse {_short(line)}") from None
        for word in words:
            key, eq, value = word.partition("=")
            if not eq:
                raise invalid(f"@sc directive: {_short(word)} is not key=value")
            if key in INT_DIRECTIVES:
                values[key] = _directive_int(key, value)
            elif key == "tool":
                values["tool"] = value
            else:
                raise invalid(f"@sc directive: unknown key {_short(key)}")
        if marker:
            try:
                values["tool_input"] = loads_bounded(raw_input)
            except TooDeep:
                raise invalid(f"@sc directive: input= is nested more than {MAX_JSON_DEPTH} levels (the simulator's limit)") from None
            except ValueError:
                raise invalid(f"@sc directive: input= is not JSON: {_short(raw_input)}") from None
    return Directives(**values)


def directive_problem(text: str) -> str | None:
    """What is wrong with the ``@sc`` directives in ``text`` (a prompt), or None: the check the
    simulator makes, for a validator that wants to refuse a scenario before it runs."""
    try:
        parse_directives(text)
    except ApiError as error:
        return error.text
    return None


def _directive_int(key: str, value: str) -> int:
    """ASCII digits only: ``str.isdigit`` also accepts superscripts and other Unicode digits."""
    if not value or not value.isascii() or not value.isdigit():
        raise invalid(f"@sc directive: {key} must be a whole number written with the digits 0-9, got {_short(value)}")
    limit = DIRECTIVE_MAXIMA[key]
    if len(value) > MAX_DIRECTIVE_VALUE_DIGITS or int(value) > limit:
        raise invalid(f"@sc directive: {key} must be at most {limit} (the simulator's limit), got {_short(value)}")
    return int(value)


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _require_str(data: Mapping[str, Any], key: str) -> str:
    if key not in data:
        raise invalid(f"{key}: Field required")
    value = data[key]
    if not isinstance(value, str):
        raise invalid(f"{key}: Input should be a valid string")
    return value


def _require_int(data: Mapping[str, Any], key: str, minimum: int) -> int:
    if key not in data:
        raise invalid(f"{key}: Field required")
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f"{key}: Input should be a valid integer")
    if value < minimum:
        raise invalid(f"{key}: Input should be greater than or equal to {minimum}")
    return value


def _require_messages(data: Mapping[str, Any]) -> list[Any]:
    if "messages" not in data:
        raise invalid("messages: Field required")
    messages = data["messages"]
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages.{index}: Input should be a valid dictionary")
        # Claude Code's per-turn-control beta puts "system" turns mid-conversation.
        if message.get("role") not in ("user", "assistant", "system"):
            raise invalid(f"messages.{index}.role: Input should be 'user', 'assistant' or 'system'")
        content = message.get("content")
        if not isinstance(content, (str, list)):
            raise invalid(f"messages.{index}.content: Input should be a valid string or list")
        if isinstance(content, list) and not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in content):
            raise invalid(f"messages.{index}.content: each block needs a string 'type'")
    return messages


def _thinking(value: Any) -> tuple[bool, int | None]:
    if value is None:
        return False, None
    if not isinstance(value, dict) or value.get("type") not in ("enabled", "disabled", "adaptive"):
        raise invalid("thinking: Input tag must be one of 'enabled', 'disabled', 'adaptive'")
    if value["type"] == "disabled":
        return False, None
    budget = value.get("budget_tokens")
    if value["type"] == "enabled":
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise invalid("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            raise invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    return True, budget if isinstance(budget, int) else None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content if b.get("type") == "text" and isinstance(b.get("text"), str))


def _last_user_text(messages: list[Any]) -> str:
    """Directives live in the first user turn of the conversation and in the last one; the first
    keeps them in force across an agentic run whose later turns are tool results."""
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        return ""
    texts = [_text_of(users[0]["content"])]
    if len(users) > 1:
        texts.append(_text_of(users[-1]["content"]))
    return "\n".join(texts)


def _count_tool_results(messages: list[Any]) -> int:
    return sum(
        1
        for m in messages
        if m.get("role") == "user" and isinstance(m.get("content"), list) and any(b.get("type") == "tool_result" for b in m["content"])
    )
