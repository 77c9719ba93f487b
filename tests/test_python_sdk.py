"""The official Python SDK, from PyPI, parses the simulator's answers exactly, on every transport."""

from __future__ import annotations

import json
import sys

import pytest

from harness.clients.launch import contract_env, run_client
from tests.support import assert_one_complete_request, assert_turn_matches, expected_first_turn, python_sdk_transport, tool_then_text_plan

CLIENT = [sys.executable, "-m", "harness.clients.programs.python_sdk_client"]
SEED = 7  # the session simulator's seed


PLANS = {
    "text": {"model": "claude-sonnet-4-6", "turns": [{"prompt": "Tell me about rivers.\n@sc words=120"}]},
    "thinking": {"model": "claude-opus-4-7", "turns": [{"prompt": "Think first.\n@sc words=30 thinking_words=50", "thinking": True}]},
    "tool": {
        "model": "claude-sonnet-4-6",
        "turns": [
            {
                "prompt": 'Run it.\n@sc tool=Bash input={"command": "sleep 2", "description": "wait a bit"}',
                "tools": [
                    {
                        "name": "Bash",
                        "description": "run a command",
                        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
                    }
                ],
            }
        ],
    },
    "max_tokens": {"model": "claude-sonnet-4-6", "turns": [{"prompt": "Long.\n@sc words=500", "max_tokens": 37}]},
}


@pytest.mark.parametrize("mode", ["http1", "h2-tls", "h2c"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "create"])
@pytest.mark.parametrize("shape", sorted(PLANS))
def test_python_sdk_accumulates_the_generated_answer(simulator, api_key, mode, stream, shape):
    plan = json.loads(json.dumps(PLANS[shape]))
    for turn in plan["turns"]:
        turn["stream"] = stream
    base_url, extra = python_sdk_transport(simulator, mode)
    run = run_client(CLIENT, contract_env(base_url, api_key, plan, simulator.ca_file, extra), deadline_s=60)
    assert run.exit_code == 0, run.stdout + run.stderr
    (got,) = run.turns
    want = expected_first_turn(SEED, plan)
    assert_turn_matches(got, want)

    assert_one_complete_request(simulator, api_key, want, stream, "http/1.1" if mode == "http1" else "h2", tls=mode == "h2-tls")


def test_python_sdk_multi_turn_tool_use_then_text(simulator, api_key):
    plan = tool_then_text_plan()
    run = run_client(CLIENT, contract_env(simulator.base_url, api_key, plan, None), deadline_s=60)
    assert run.exit_code == 0, run.stderr
    first, second = run.turns
    assert first["stop_reason"] == "tool_use" and first["tool_uses"][0]["input"] == {"command": "sleep 2"}
    assert second["stop_reason"] == "end_turn" and second["text"]
    requests = [r for r in simulator.journal(api_key) if r["kind"] == "request"]
    assert [r["answer"]["text"] for r in requests] == [first["text"], second["text"]]
    assert len({r["conn"] for r in requests}) == 1  # the SDK reused its pooled keep-alive connection
