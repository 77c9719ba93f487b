"""The OpenAI-compatible APIs on the wire: Chat Completions chunks and Responses typed events, error
bodies and headers, and the fault plan acting on them (events counted per chunk or typed event,
each API's in-stream error, a clean end without the stream's terminator).

Read with a raw httpx client so the bytes are the simulator's, not an SDK's interpretation; the
shapes are those the official SDKs parse (see tests/test_openai_sdks.py for the SDKs themselves).
"""

from __future__ import annotations

import itertools
import json

import httpx
import pytest

from harness import scenario
from harness.drive.simulator_process import SimulatorProcess
from simulator import sse
from simulator.api.answer import generate
from simulator.api.openai_router import expected_answer
from simulator.api.request import parse_messages_request

SEED = 9
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
TOOLS = [
    {
        "type": "function",
        "function": {"name": "Bash", "description": "run", "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}},
    }
]
_keys = itertools.count(1)


@pytest.fixture(scope="module")
def sim():
    with SimulatorProcess(["--seed", str(SEED)]) as process:
        yield process


@pytest.fixture
def plain(sim):
    sim.load_plan({"seed": 0, "faults": []})
    return sim


def key() -> str:
    return f"sk-wire-{next(_keys)}"


def chat_body(prompt: str, stream: bool = True, **extra) -> dict:
    return {"model": "gpt-5", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}], "stream": stream, **extra}


def responses_body(prompt: str, stream: bool = True, **extra) -> dict:
    return {"model": "gpt-5", "input": prompt, "stream": stream, **extra}


def post(sim, path: str, body: dict, api_key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {api_key or key()}"} if api_key != "" else {}
    return httpx.post(sim.base_url + path, json=body, headers=headers, timeout=30)


def data_lines(body: bytes) -> list[str]:
    return [event.data for event in sse.decode_all(body)]


def messages_text(prompt: str, max_tokens: int = 4096) -> str:
    """The Messages API's answer to the same prompt: the text every API must carry."""
    body = {"model": "m", "max_tokens": max_tokens, "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]}
    return generate(SEED, parse_messages_request(json.dumps(body).encode()), 40).text


def test_chat_stream_chunks_carry_the_messages_answer(plain):
    prompt = "Rivers.\n@sc words=30"
    response = post(plain, CHAT, chat_body(prompt, stream_options={"include_usage": True}))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["x-ratelimit-limit-requests"] and response.headers["x-ratelimit-remaining-tokens"]
    lines = data_lines(response.content)
    assert lines[-1] == "[DONE]"
    assert all(not e.name or e.name == "message" for e in sse.decode_all(response.content))  # no event names
    chunks = [json.loads(line) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == messages_text(prompt) == expected_answer(SEED, CHAT, json.dumps(chat_body(prompt)).encode()).text
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finish] == ["stop"] and finish[0]["choices"][0]["delta"] == {}
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 30
    assert all(c["usage"] is None for c in chunks[:-1])  # include_usage: null on every other chunk


def test_chat_stream_tool_call_in_pieces_and_without_usage(plain):
    prompt = 'go\n@sc tool=Bash input={"command":"sleep 2"}'
    response = post(plain, CHAT, chat_body(prompt, tools=TOOLS))
    chunks = [json.loads(line) for line in data_lines(response.content)[:-1]]
    assert all("usage" not in c for c in chunks)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    first, rest = calls[0], calls[1:]
    assert first["id"].startswith("call_") and first["type"] == "function" and first["function"] == {"name": "Bash", "arguments": ""}
    assert len(rest) > 1 and all(set(c) == {"index", "function"} for c in rest)
    assert json.loads("".join(c["function"]["arguments"] for c in rest)) == {"command": "sleep 2"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_chat_non_streaming_completion(plain):
    prompt = "Rivers.\n@sc words=12"
    response = post(plain, CHAT, chat_body(prompt, stream=False, max_completion_tokens=5))
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    completion = response.json()
    assert completion["object"] == "chat.completion" and completion["id"].startswith("chatcmpl-")
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == messages_text(prompt, max_tokens=5)
    assert completion["usage"]["completion_tokens"] == 5


def test_responses_stream_is_the_typed_event_sequence(plain):
    prompt = 'go\n@sc tool=Bash input={"command":"ls"}'
    tools = [{"type": "function", "name": "Bash", "parameters": {"type": "object"}}]
    response = post(plain, RESPONSES, responses_body(prompt, tools=tools))
    events = list(sse.decode_all(response.content))
    payloads = [e.json() for e in events]
    assert [e.name for e in events] == [p["type"] for p in payloads]  # event: TYPE matches data.type
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    types = [p["type"] for p in payloads]
    deltas = types.count("response.output_text.delta")
    arguments = types.count("response.function_call_arguments.delta")
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        *["response.function_call_arguments.delta"] * arguments,
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    text = "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta")
    assert text == messages_text(prompt) and payloads[5 + deltas - 1]["text"] == text
    args = "".join(p["delta"] for p in payloads if p["type"] == "response.function_call_arguments.delta")
    assert json.loads(args) == {"command": "ls"}
    final = payloads[-1]["response"]
    assert final["status"] == "completed" and [o["type"] for o in final["output"]] == ["message", "function_call"]
    assert final["output"][0]["content"][0]["text"] == text and final["output"][1]["arguments"] == args
    assert payloads[0]["response"]["id"] == final["id"] and payloads[0]["response"]["status"] == "in_progress"


def test_responses_non_streaming_and_incomplete(plain):
    prompt = "Rivers.\n@sc words=50"
    whole = post(plain, RESPONSES, responses_body(prompt, stream=False)).json()
    assert whole["object"] == "response" and whole["status"] == "completed"
    assert whole["output"][0]["content"][0]["text"] == messages_text(prompt)
    cut = post(plain, RESPONSES, responses_body(prompt, stream=True, max_output_tokens=7))
    last = list(sse.decode_all(cut.content))[-1].json()
    assert last["type"] == "response.incomplete" and last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


@pytest.mark.parametrize("path", [CHAT, RESPONSES])
def test_validation_and_auth_errors_have_openai_bodies(plain, path):
    bad = httpx.post(plain.base_url + path, content=b"{not json", headers={"authorization": "Bearer k", "content-type": "application/json"})
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert bad.headers["x-request-id"].startswith("req_") and bad.headers["x-should-retry"] == "false"
    missing = post(plain, path, {"model": "gpt-5", "stream": True})
    assert missing.status_code == 400 and "Missing required parameter" in missing.json()["error"]["message"]
    anonymous = post(plain, path, chat_body("x") if path == CHAT else responses_body("x"), api_key="")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["message"].startswith("You didn't provide an API key.")


def test_injected_http_errors_have_openai_bodies_and_headers(sim):
    statuses = (404, 429, 500, 503)
    rules = [{"type": "http_error", "status": status, "select": {"requests": [n + 1], "path_prefix": CHAT}} for n, status in enumerate(statuses)]
    rules[1]["retry_after"] = 2.0
    rules[1]["retry_after_ms"] = 1500.0
    sim.load_plan({"seed": 1, "faults": rules})
    api_key = key()
    seen = {}
    for status in statuses:
        response = post(sim, CHAT, chat_body(f"errors {status}"), api_key)
        assert response.status_code == status
        seen[status] = response
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
        assert response.headers["x-request-id"].startswith("req_") and "x-ratelimit-limit-requests" in response.headers
    assert seen[429].json()["error"]["type"] == "requests" and seen[429].json()["error"]["code"] == "rate_limit_exceeded"
    assert seen[429].headers["retry-after"] == "2" and seen[429].headers["retry-after-ms"] == "1500"
    assert seen[500].json()["error"]["type"] == "server_error" and seen[503].json()["error"]["code"] == "service_unavailable"
    assert seen[404].json()["error"]["type"] == "invalid_request_error" and seen[404].headers["x-should-retry"] == "false"
    assert seen[503].headers["x-should-retry"] == "true"


@pytest.mark.parametrize("path", [CHAT, RESPONSES])
def test_events_trigger_counts_chunks_or_typed_events(sim, path):
    sim.load_plan({"seed": 1, "faults": [{"type": "tcp_reset", "trigger": {"at": "events", "value": 7}, "select": {"path_prefix": path}}]})
    api_key = key()
    body = chat_body("Rivers.\n@sc words=40") if path == CHAT else responses_body("Rivers.\n@sc words=40")
    received = b""
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("POST", sim.base_url + path, json=body, headers={"authorization": f"Bearer {api_key}"}, timeout=30) as response:
            for chunk in response.iter_raw():
                received += chunk
    assert len(list(sse.decode_all(received))) == 7
    (request,) = [r for r in sim.journal(api_key) if r["kind"] == "request"]
    assert request["end"] == "fault:tcp_reset" and request["events_out"] == 7 and request["faults"][0]["events_out"] == 7


def test_sse_error_is_each_apis_own_form(sim):
    sim.load_plan({"seed": 1, "faults": [{"type": "sse_error", "trigger": {"at": "events", "value": 5}, "select": {"path_prefix": "/v1/"}}]})
    chat = post(sim, CHAT, chat_body("Rivers.\n@sc words=40"))
    assert chat.status_code == 200
    lines = data_lines(chat.content)
    assert len(lines) == 6 and "[DONE]" not in lines
    assert json.loads(lines[-1]) == {"error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}}
    responses = post(sim, RESPONSES, responses_body("Rivers.\n@sc words=40"))
    events = list(sse.decode_all(responses.content))
    assert len(events) == 6 and events[-1].name == "error"
    assert events[-1].json() == {"type": "error", "code": "overloaded", "message": "Overloaded", "param": None, "sequence_number": 5}
    messages = httpx.post(
        sim.base_url + "/v1/messages",
        headers={"x-api-key": key()},
        timeout=30,
        json={"model": "m", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "Rivers."}]},
    )
    last = list(sse.decode_all(messages.content))[-1]
    assert last.name == "error" and last.json() == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def test_truncated_clean_ends_chat_without_done(sim):
    sim.load_plan({"seed": 1, "faults": [{"type": "truncated_clean", "trigger": {"at": "events", "value": 9}, "select": {"path_prefix": CHAT}}]})
    response = post(sim, CHAT, chat_body("Rivers.\n@sc words=40"))
    lines = data_lines(response.content)
    assert response.status_code == 200 and len(lines) == 9 and "[DONE]" not in lines
    assert all(json.loads(line)["choices"][0]["finish_reason"] is None for line in lines)


def test_a_scenario_names_its_api(tmp_path):
    path = tmp_path / "chat.toml"
    path.write_text('version = 1\napi = "chat"\n[[faults]]\ntype = "tcp_reset"\ntrigger = { at = "events", value = 5 }\n')
    item = scenario.load(path)
    assert item.api == "chat" and item.client_script()["api"] == "chat"
    assert item.faults.rules[0].select.path_prefix == CHAT  # the rule selects the API's path
    assert scenario.load(scenario.find("reset_mid_thinking")).client_script()["api"] == "messages"
    path.write_text('version = 1\napi = "completions"\n')
    with pytest.raises(scenario.ScenarioError, match=r"chat.toml: api: must be one of messages, chat, responses, not 'completions'"):
        scenario.load(path)
    path.write_text('version = 1\napi = "responses"\n[conversation]\nthinking = true\n')
    with pytest.raises(scenario.ScenarioError, match=r"conversation.thinking: the responses API has no thinking block"):
        scenario.load(path)


def test_capacity_overload_on_a_chat_path_answers_in_openai_form(sim):
    from concurrent.futures import ThreadPoolExecutor

    sim.load_plan({"seed": 1, "faults": [], "capacity": {"limit": 1, "service_s": 1.0, "queue": 0, "retry_after": 1, "path_prefix": CHAT}})
    try:
        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda n: post(sim, CHAT, chat_body(f"busy {n}", stream=False)), range(2)))
    finally:
        sim.load_plan({"seed": 0, "faults": []})
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200, 529]
    (over,) = [r for r in replies if r.status_code == 529]
    assert over.json()["error"]["type"] == "server_error" and over.json()["error"]["code"] == "overloaded"
    assert over.headers["retry-after"] == "1" and over.headers["x-request-id"].startswith("req_")
