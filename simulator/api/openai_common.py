"""What the two OpenAI-compatible APIs share: error bodies, headers, and the bridge to the answer.

Both APIs answer with the same generator as the Messages API: a request is turned into a
:class:`MessagesRequest` whose conversation is the OpenAI conversation written in Messages form
(a user string becomes one text block, a ``tool`` message a ``tool_result`` block, system and
developer turns are left out as the Messages API keeps ``system`` out of ``messages``). A prompt
therefore gets the same words on every API, and the digest that identifies a logical request
(retries, integrity) is computed the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import sse
from .errors import ApiError, invalid, retryable_status
from .request import MessagesRequest, conversation_request

DEFAULT_MAX_TOKENS = 4096

# Anthropic error types (the fault plan's vocabulary) in OpenAI's words: (type, code).
OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request"),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country, region, or territory not supported"),
    404: ("invalid_request_error", "unknown_url", "Not Found"),
    405: ("invalid_request_error", None, "Method Not Allowed"),
    408: ("timeout", None, "Request timed out."),
    409: ("invalid_request_error", "conflict", "Conflict"),
    413: ("invalid_request_error", "request_too_large", "Request too large."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", "service_unavailable", "The server is overloaded or not ready yet."),
    504: ("timeout", None, "Gateway timeout."),
    529: ("server_error", "overloaded", "The server is overloaded or not ready yet."),
}
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth "
    "(i.e. Authorization: Bearer YOUR_KEY)."
)
ANTHROPIC_TO_OPENAI_TYPE = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "invalid_request_error",
    "permission_error": "invalid_request_error",
    "not_found_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "requests",
    "api_error": "server_error",
    "timeout_error": "timeout",
    "overloaded_error": "server_error",
}


def error_object(error: ApiError) -> dict[str, Any]:
    """``{"message", "type", "param", "code"}`` for an error raised or injected as an ApiError."""
    kind, code, default = OPENAI_ERRORS.get(error.status, ("server_error", None, "Error"))
    message = error.message or default
    if error.error_type:
        kind = ANTHROPIC_TO_OPENAI_TYPE.get(error.error_type, error.error_type)
        if error.error_type == "overloaded_error":
            code = "overloaded"
    if error.status == 401:
        message = NO_KEY if error.error_type == "authentication_error" else message
    return {"message": message, "type": kind, "param": None, "code": code}


def error_body(error: ApiError) -> bytes:
    return json.dumps({"error": error_object(error)}, separators=(",", ":")).encode()


def stream_error_object(error_type: str, message: str) -> dict[str, Any]:
    """An in-stream error (the ``sse_error`` fault) in OpenAI's words."""
    code = "overloaded" if error_type == "overloaded_error" else ("rate_limit_exceeded" if error_type == "rate_limit_error" else None)
    return {"message": message, "type": ANTHROPIC_TO_OPENAI_TYPE.get(error_type, error_type), "param": None, "code": code}


def rate_limit_headers() -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"x-ratelimit-limit-requests", b"10000"),
        (b"x-ratelimit-limit-tokens", b"30000000"),
        (b"x-ratelimit-remaining-requests", b"9999"),
        (b"x-ratelimit-remaining-tokens", b"29999000"),
        (b"x-ratelimit-reset-requests", b"6ms"),
        (b"x-ratelimit-reset-tokens", b"2ms"),
    )


def common_headers(request_id: str, content_type: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"content-type", content_type),
        (b"x-request-id", request_id.encode()),
        (b"openai-version", b"2020-10-01"),
        (b"openai-processing-ms", b"1"),
        *rate_limit_headers(),
    )


def error_reply_headers(request_id: str, status: int, extra: Sequence[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
    return (*common_headers(request_id, b"application/json"), (b"x-should-retry", b"true" if retryable_status(status) else b"false"), *extra)


def sse_data(payload: Any) -> bytes:
    """A Chat Completions line: ``data: JSON`` and a blank line, no event name."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def sse_typed(payload: Mapping[str, Any]) -> bytes:
    """A Responses event: ``event: TYPE`` and ``data: JSON`` (the type repeated inside)."""
    return sse.encode(payload["type"], payload)


def now() -> int:
    return int(time.time())


# -- from an OpenAI conversation to the Messages form the generator reads ------------------------------------


def text_blocks(content: Any, path: str, part_types: tuple[str, ...]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if content is None:
        return []
    if not isinstance(content, list):
        raise invalid(f"Invalid type for '{path}': expected a string or an array of content parts.")
    blocks = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise invalid(f"Invalid value for '{path}[{index}]': expected an object with a 'type'.")
        if part["type"] in part_types:
            if not isinstance(part.get("text"), str):
                raise invalid(f"Missing required parameter: '{path}[{index}].text'.")
            blocks.append({"type": "text", "text": part["text"]})
    return blocks


def tool_use_block(call_id: Any, name: Any, arguments: Any, path: str) -> dict[str, Any]:
    if not isinstance(name, str):
        raise invalid(f"Missing required parameter: '{path}.name'.")
    try:
        arguments_value = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except ValueError:
        arguments_value = arguments
    return {"type": "tool_use", "id": str(call_id), "name": name, "input": arguments_value}


def tool_result_block(call_id: Any, output: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": str(call_id), "content": output if isinstance(output, str) else json.dumps(output)}


def merge_turns(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent turns of one role become one (tool results and the next prompt: one user turn)."""
    merged: list[dict[str, Any]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1] = {"role": turn["role"], "content": [*merged[-1]["content"], *turn["content"]]}
        else:
            merged.append({"role": turn["role"], "content": list(turn["content"])})
    return merged


def functions_as_tools(tools: Any, path: str, nested: bool) -> tuple[dict[str, Any], ...]:
    """``[{"type": "function", "function": {...}}]`` (chat) or ``[{"type": "function", "name": ...}]``
    (responses) as Messages tools (name, input_schema)."""
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise invalid(f"Invalid type for '{path}': expected an array.")
    out = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise invalid(f"Invalid type for '{path}[{index}]': expected an object.")
        spec = tool.get("function") if nested else tool
        if tool.get("type") != "function" or not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            continue  # built-in tools (web search, ...) are accepted and never called
        out.append({"name": spec["name"], "description": spec.get("description", ""), "input_schema": spec.get("parameters") or {}})
    return tuple(out)


def tool_choice_of(choice: Any, nested: bool) -> dict[str, Any] | None:
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name") if nested else choice.get("name")
        if isinstance(name, str):
            return {"type": "tool", "name": name}
    return None


def messages_request(model: str, max_tokens: int, turns: list[dict[str, Any]], stream: bool, tools: tuple, tool_choice: Any) -> MessagesRequest:
    if not any(t["role"] == "user" for t in turns):
        raise invalid("The conversation must contain at least one user message.")
    return conversation_request(model, max_tokens, turns, stream, tools, tool_choice)


def require_model(data: Mapping[str, Any]) -> str:
    if "model" not in data:
        raise invalid("you must provide a model parameter")
    if not isinstance(data["model"], str):
        raise invalid("Invalid type for 'model': expected a string.")
    return data["model"]


def positive_int(data: Mapping[str, Any], *keys: str) -> int:
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(f"Invalid type for '{key}': expected an integer.")
        if value < 1:
            raise invalid(f"Invalid '{key}': integer below minimum value. Expected a value >= 1, but got {value} instead.")
        return value
    return DEFAULT_MAX_TOKENS


def require_bool(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(f"Invalid type for '{key}': expected a boolean.")
    return value


ErrorEncoder = Callable[[str, str, int], bytes]  # (error_type, message, events already written) -> bytes


def headers(request_id: str, stream: bool) -> tuple[tuple[bytes, bytes], ...]:
    """The head of a reply of either OpenAI API: SSE when streaming, JSON otherwise."""
    if stream:
        return (*common_headers(request_id, b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"))
    return common_headers(request_id, b"application/json")


def body_json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
