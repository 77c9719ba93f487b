"""The official Go SDK (anthropic-sdk-go) parses the simulator's answers exactly, over h2+TLS and HTTP/1.1."""

from __future__ import annotations

import json

import pytest

from harness.clients.launch import contract_env, run_client
from simulator.api.answer import generate
from simulator.api.request import parse_messages_request
from tests.support import TOOLS, assert_one_complete_request, assert_turn_matches, expected_first_turn, require, tool_then_text_plan
from tests.test_python_sdk import PLANS

pytestmark = pytest.mark.clients

SEED = 7  # the session simulator's seed
BINARY = TOOLS / "bin" / "streamchaos-go-client"


@pytest.fixture(scope="module")
def client() -> list[str]:
    return [require(BINARY, "the Go SDK contract client")]


def base_url(simulator, mode: str) -> str:
    # Go's net/http negotiates h2 by ALPN over TLS and speaks HTTP/1.1 over plain http.
    return f"https://localhost:{simulator.port}" if mode == "h2-tls" else simulator.base_url


@pytest.mark.parametrize("mode", ["h2-tls", "http1"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "create"])
@pytest.mark.parametrize("shape", sorted(PLANS))
def test_go_sdk_accumulates_the_generated_answer(simulator, api_key, client, mode, stream, shape):
    plan = json.loads(json.dumps(PLANS[shape]))
    for turn in plan["turns"]:
        turn["stream"] = stream
    run = run_client(client, contract_env(base_url(simulator, mode), api_key, plan, simulator.ca_file), deadline_s=30)
    assert run.exit_code == 0, run.stdout + run.stderr
    (got,) = run.turns
    want = expected_first_turn(SEED, plan)
    assert_turn_matches(got, want)

    assert_one_complete_request(simulator, api_key, want, stream, "h2" if mode == "h2-tls" else "http/1.1", tls=mode == "h2-tls")


@pytest.mark.parametrize("mode", ["h2-tls", "http1"])
def test_go_sdk_multi_turn_tool_use_then_text(simulator, api_key, client, mode):
    plan = tool_then_text_plan()
    tools = plan["turns"][0]["tools"]
    run = run_client(client, contract_env(base_url(simulator, mode), api_key, plan, simulator.ca_file), deadline_s=30)
    assert run.exit_code == 0, run.stdout + run.stderr
    first, second = run.turns
    want_first = expected_first_turn(SEED, plan)
    assert_turn_matches(first, want_first)
    assert first["stop_reason"] == "tool_use" and first["tool_uses"][0]["input"] == {"command": "sleep 2"}

    # The second request as the Python client builds it: the assistant turn echoed block by block,
    # then the tool result as a plain string. The Go client's (Message.ToParam) must be the same
    # conversation, or the generator would answer something else.
    first_answer = generate(
        SEED,
        parse_messages_request(
            json.dumps(
                {
                    "model": plan["model"],
                    "max_tokens": 1024,
                    "tools": tools,
                    "messages": [{"role": "user", "content": [{"type": "text", "text": plan["turns"][0]["prompt"]}]}],
                }
            ).encode()
        ),
        40,
    )
    second_body = {
        "model": plan["model"],
        "max_tokens": 1024,
        "tools": tools,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": plan["turns"][0]["prompt"]}]},
            {"role": "assistant", "content": [b.to_message_content() for b in first_answer.blocks]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": first["tool_uses"][0]["id"], "content": "ok"},
                    {"type": "text", "text": plan["turns"][1]["prompt"]},
                ],
            },
        ],
    }
    want_second = generate(SEED, parse_messages_request(json.dumps(second_body).encode()), 40).summary()
    assert_turn_matches(second, want_second)
    assert second["stop_reason"] == "end_turn" and second["text"]

    requests = [r for r in simulator.journal(api_key) if r["kind"] == "request"]
    assert [r["answer"]["text"] for r in requests] == [first["text"], second["text"]]
    assert all(r["end"] == "complete" and r["events_out"] == r["events_total"] for r in requests)
    assert {r["protocol"] for r in requests} == {"h2" if mode == "h2-tls" else "http/1.1"}
    assert len({r["conn"] for r in requests}) == 1  # the SDK reused its pooled connection
