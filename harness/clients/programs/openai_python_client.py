"""The official OpenAI Python SDK (``openai`` on PyPI, over its httpx transport) as a contract client.

Reads the conversation from STREAMCHAOS_SCRIPT; its ``api`` picks the API: ``chat`` (the default)
uses ``client.chat.completions.stream(...).get_final_completion()`` (``create`` when a turn does not
stream), ``responses`` uses ``client.responses.stream(...).get_final_response()`` (or ``create``):
the SDK's own accumulators. Prints one JSON line per turn and exits 0; on an error prints
``{"turn": i, "error": "<Class>: <message> (cause: ...)"}`` and exits 1. The SDK reads
OPENAI_BASE_URL and OPENAI_API_KEY itself. Transport: HTTP/1.1 by default; STREAMCHAOS_HTTP2=1 uses
``DefaultHttpxClient(http2=True)`` (h2 over TLS by ALPN), STREAMCHAOS_HTTP2=prior-knowledge h2c.
The script's ``max_retries`` and ``timeout_s`` (or STREAMCHAOS_MAX_RETRIES / STREAMCHAOS_TIMEOUT_S)
override the SDK's defaults (2 retries, 600 s).
"""

from __future__ import annotations

import json
import sys
import time

import openai

from harness.clients.openai_script import CHAT_FINISH, api_of, chat_body, part_prompts, responses_body
from harness.clients.programs import print_parts, send_parts
from harness.clients.script import read_script, sdk_client_options


def make_client(script: dict) -> openai.OpenAI:
    return openai.OpenAI(**sdk_client_options(script, openai.DefaultHttpxClient))


def _arguments(text: str):
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return text


def chat_summary(turn: int, completion, started: float) -> dict:
    choice = completion.choices[0]
    message = choice.message
    calls = message.tool_calls or []
    usage = completion.usage
    return {
        "turn": turn,
        "stop_reason": CHAT_FINISH.get(choice.finish_reason, choice.finish_reason),
        "text": message.content or "",
        "thinking": "",
        "tool_uses": [{"id": c.id, "name": c.function.name, "input": _arguments(c.function.arguments)} for c in calls],
        "usage": {"input_tokens": usage.prompt_tokens if usage else None, "output_tokens": usage.completion_tokens if usage else None},
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }


def responses_summary(turn: int, response, started: float) -> dict:
    calls = [item for item in response.output if item.type == "function_call"]
    if response.status == "incomplete":
        stop = "max_tokens"
    else:
        stop = "tool_use" if calls else "end_turn"
    usage = response.usage
    return {
        "turn": turn,
        "stop_reason": stop,
        "text": response.output_text,
        "thinking": "",
        "tool_uses": [{"id": c.call_id, "name": c.name, "input": _arguments(c.arguments)} for c in calls],
        "usage": {"input_tokens": usage.input_tokens if usage else None, "output_tokens": usage.output_tokens if usage else None},
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }


def ask(client: openai.OpenAI, api: str, body: dict, stream: bool):
    body = dict(body)
    body.pop("stream", None)
    if api == "responses":
        if stream:
            with client.responses.stream(**body) as events:
                return events.get_final_response()
        return client.responses.create(**body)
    if stream:
        with client.chat.completions.stream(**body) as events:
            return events.get_final_completion()
    body.pop("stream_options", None)
    return client.chat.completions.create(**body)


def describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    causes: list[str] = []
    cause = error.__cause__ or error.__context__
    while cause is not None and len(causes) < 4:
        causes.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    return f"{text} (cause: {' <- '.join(causes)})" if causes else text


def main() -> int:
    script = read_script()
    api = api_of(script)
    client = make_client(script)
    history: list = []  # chat messages, or responses input items
    pending: list = []  # tool results for the next turn
    for index, turn in enumerate(script["turns"]):
        time.sleep(float(turn.get("idle_before_s", 0)))
        stream = turn.get("stream", True)
        conversations = [[*history, *pending, {"role": "user", "content": prompt}] for prompt in part_prompts(turn)]
        build = responses_body if api == "responses" else chat_body
        started = time.monotonic()
        outcomes = send_parts(ask, [(client, api, build(script, turn, conversation, stream), stream) for conversation in conversations])
        summarize = responses_summary if api == "responses" else chat_summary
        if not print_parts(index, outcomes, summarize, started, describe):
            return 1
        reply = outcomes[0]
        if api == "responses":
            calls = [item for item in reply.output if item.type == "function_call"]
            history = conversations[0] + [{"role": "assistant", "content": reply.output_text}] * bool(reply.output_text)
            history += [{"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls]
            pending = [{"type": "function_call_output", "call_id": c.call_id, "output": "ok"} for c in calls]
        else:
            message = reply.choices[0].message
            calls = message.tool_calls or []
            assistant: dict = {"role": "assistant", "content": message.content}
            if calls:
                assistant["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}} for c in calls
                ]
            history = conversations[0] + [assistant]
            pending = [{"role": "tool", "tool_call_id": c.id, "content": "ok"} for c in calls]
    return 0


if __name__ == "__main__":
    sys.exit(main())
