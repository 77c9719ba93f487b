"""The official OpenAI SDKs (PyPI ``openai``, npm ``openai``) and the Vercel AI SDK (npm ``ai`` with
``@ai-sdk/openai``) accumulate exactly the generator's answer, on both OpenAI-compatible APIs
(Chat Completions and Responses), streaming and not, over every transport each one uses:
the Python SDK on HTTP/1.1, h2 over TLS (ALPN) and h2c; the Node clients on HTTP/1.1 over TLS and
in cleartext (undici has no h2 by default).

"Exactly the generator's answer" is the Messages API's answer to the same prompt: the simulator
reads an OpenAI conversation as its Messages form, so one prompt gets one answer on every API.
"""

from __future__ import annotations

import json
import sys

import pytest

from harness.clients.adapters.openai_node import OPENAI_JS_DIR
from harness.clients.launch import contract_env, run_client
from tests.support import assert_one_complete_request, expected_first_turn, python_sdk_transport, require

pytestmark = pytest.mark.clients

SEED = 7  # the session simulator's seed
TOOLS = [{"name": "Bash", "description": "run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]
PLANS = {
    "text": {"model": "gpt-5", "turns": [{"prompt": "Tell me about rivers.\n@sc words=120"}]},
    "tool": {
        "model": "gpt-5",
        "turns": [{"prompt": 'Run it.\n@sc tool=Bash input={"command": "sleep 2", "description": "wait a bit"}', "tools": TOOLS}],
    },
    "max_tokens": {"model": "gpt-5", "turns": [{"prompt": "Long.\n@sc words=500", "max_tokens": 37}]},
}
PYTHON = [sys.executable, "-m", "harness.clients.programs.openai_python_client"]


def plan_for(shape: str, api: str, stream: bool) -> dict:
    plan = json.loads(json.dumps(PLANS[shape]))
    plan["api"] = api
    plan["max_retries"] = 0
    for turn in plan["turns"]:
        turn["stream"] = stream
    return plan


def assert_same_answer(got: dict, want: dict) -> None:
    assert got.get("error") is None, got
    assert got["text"] == want["text"]
    assert got["stop_reason"] == want["stop_reason"]
    assert [(t["name"], t["input"]) for t in got["tool_uses"]] == [(t["name"], t["input"]) for t in want["tool_uses"]]
    # a tool call's id is the generator's, in OpenAI's spelling: toolu_X -> call_X
    assert [t["id"] for t in got["tool_uses"]] == ["call_" + t["id"].removeprefix("toolu_") for t in want["tool_uses"]]
    assert got["usage"] == {"input_tokens": want["input_tokens"], "output_tokens": want["output_tokens"]}


def tool_then_text(api: str) -> dict:
    """Two turns for the OpenAI clients: a Bash tool call, then text."""
    return {
        "api": api,
        "model": "gpt-5",
        "turns": [
            {"prompt": 'go\n@sc tool=Bash input={"command":"sleep 2"}', "tools": TOOLS},
            {"prompt": "and now summarize", "tools": TOOLS},
        ],
    }


def assert_tool_then_text(simulator, key: str, run) -> list[dict]:
    """The client ran both turns (the tool call, then text), each the journal's answer; the requests."""
    assert run.exit_code == 0, run.stdout + run.stderr
    first, second = run.turns
    assert first["stop_reason"] == "tool_use" and first["tool_uses"][0]["input"] == {"command": "sleep 2"}
    assert second["stop_reason"] == "end_turn" and second["text"]
    requests = [r for r in simulator.journal(key) if r["kind"] == "request"]
    assert [r["answer"]["text"] for r in requests] == [first["text"], second["text"]]
    return requests


def assert_journal(simulator, api_key: str, api: str, want: dict, stream: bool, protocol: str, tls: bool) -> dict:
    request = assert_one_complete_request(simulator, api_key, want, stream, protocol, tls)
    assert request["path"] == {"chat": "/v1/chat/completions", "responses": "/v1/responses"}[api]
    return request


# -- openai (PyPI) --------------------------------------------------------------------------------

PY_MODES = {"http1": ("http/1.1", False), "h2-tls": ("h2", True), "h2c": ("h2", False)}


# every transport with text; a tool call in pieces on one of each kind (HTTP/1.1, h2)
PY_CASES = [(mode, "text") for mode in PY_MODES] + [("http1", "tool"), ("h2-tls", "tool")]


@pytest.mark.parametrize("mode, shape", PY_CASES)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "create"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_openai_python_accumulates_the_generated_answer(simulator, api_key, mode, stream, api, shape):
    plan = plan_for(shape, api, stream)
    base_url, extra = python_sdk_transport(simulator, mode)
    run = run_client(PYTHON, contract_env(base_url, api_key, plan, simulator.ca_file, extra), deadline_s=60)
    assert run.exit_code == 0, run.stdout + run.stderr
    (got,) = run.turns
    want = expected_first_turn(SEED, plan)
    assert_same_answer(got, want)
    protocol, tls = PY_MODES[mode]
    request = assert_journal(simulator, api_key, api, want, stream, protocol, tls)
    assert request["user_agent"].startswith("OpenAI/Python ")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "create"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_openai_python_max_tokens(simulator, api_key, api, stream):
    plan = plan_for("max_tokens", api, stream)
    run = run_client(PYTHON, contract_env(simulator.base_url, api_key, plan, None), deadline_s=60)
    want = expected_first_turn(SEED, plan)
    assert want["stop_reason"] == "max_tokens"
    if stream:
        # Both stream helpers refuse an answer cut by the token limit, each its own way: chat's
        # raises on finish_reason "length"; responses' wants response.completed, not response.incomplete.
        assert run.exit_code == 1
        error = {
            "chat": "LengthFinishReasonError: Could not parse response content as the length limit was reached",
            "responses": "RuntimeError: Didn't receive a `response.completed` event.",
        }[api]
        assert run.turns[0]["error"].startswith(error), run.turns
        return
    assert run.exit_code == 0, run.stdout + run.stderr
    assert_same_answer(run.turns[0], want)


def test_openai_python_multi_turn_tool_call_then_text(simulator, api_key):
    for api in ("chat", "responses"):
        key = f"{api_key}-{api}"
        plan = tool_then_text(api)
        run = run_client(PYTHON, contract_env(simulator.base_url, key, plan, None), deadline_s=60)
        requests = assert_tool_then_text(simulator, key, run)
        # The stream stops reading at [DONE] / response.completed and closes the response: HTTP/1.1
        # reuses the connection only if the body's last chunk had already been read with it. An
        # unpaced reply is one write, so that races here; a paced one (openai_nat_eviction) always
        # ends with a new connection (tests/test_openai_runner.py).
        assert len({r["conn"] for r in requests}) <= 2


# -- openai (npm) and the Vercel AI SDK on Node ----------------------------------------------------

NODE_CLIENTS = {
    "openai-node": ("openai_client.mjs", OPENAI_JS_DIR / "node_modules" / "openai", "OpenAI/JS "),
    "ai-sdk-node": ("ai_sdk_client.mjs", OPENAI_JS_DIR / "node_modules" / "ai", "ai-sdk-provider-utils/"),
}


def node_command(client: str) -> list[str]:
    script, package, _ = NODE_CLIENTS[client]
    require(package, f"{package.name} (npm, harness/clients/openai_js)")
    return [require("node", "node"), str(OPENAI_JS_DIR / script)]


def run_node(simulator, api_key: str, client: str, plan: dict, tls: bool):
    base_url = f"https://localhost:{simulator.port}" if tls else simulator.base_url
    env = contract_env(base_url, api_key, plan, simulator.ca_file if tls else None)
    return run_client(node_command(client), env, deadline_s=60, cwd=str(OPENAI_JS_DIR))


@pytest.mark.parametrize("tls, shape", [(True, "text"), (False, "text"), (True, "tool")], ids=["tls-text", "http-text", "tls-tool"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "create"])
@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("client", list(NODE_CLIENTS))
def test_node_clients_accumulate_the_generated_answer(simulator, api_key, client, shape, api, stream, tls):
    plan = plan_for(shape, api, stream)
    run = run_node(simulator, api_key, client, plan, tls)
    assert run.exit_code == 0, run.stdout + run.stderr
    (got,) = run.turns
    want = expected_first_turn(SEED, plan)
    assert_same_answer(got, want)
    request = assert_journal(simulator, api_key, api, want, stream, "http/1.1", tls)
    assert NODE_CLIENTS[client][2] in request["user_agent"], request["user_agent"]


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("client", list(NODE_CLIENTS))
def test_node_clients_max_tokens(simulator, api_key, client, api):
    plan = plan_for("max_tokens", api, True)
    run = run_node(simulator, api_key, client, plan, False)
    want = expected_first_turn(SEED, plan)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert_same_answer(run.turns[0], want)


@pytest.mark.parametrize("client", list(NODE_CLIENTS))
def test_node_clients_multi_turn_tool_call_then_text(simulator, api_key, client):
    for api in ("chat", "responses"):
        key = f"{api_key}-{api}"
        plan = tool_then_text(api)
        run = run_node(simulator, key, client, plan, False)
        assert_tool_then_text(simulator, key, run)
