"""Every contract client honours the script's options the way harness/clients/programs/python_sdk_client.py does.

``max_retries`` and ``timeout_s`` from the script (the environment wins), a turn's ``idle_before_s``
(slept before the turn) and ``parallel: N`` (N requests at once, one line per part, the conversation
going on with part 0), for the Python SDK, the TypeScript SDK on Node and on Bun, and the Go SDK.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from harness.clients.launch import contract_env, run_client
from simulator.api.answer import generate
from simulator.api.request import parse_messages_request
from tests.support import ROOT, TOOLS, require

pytestmark = pytest.mark.clients

JS_DIR = ROOT / "harness" / "clients" / "js"
SEED = 7  # the seed of every simulator here
PACED = ("--seed", str(SEED), "--tokens-per-second", "400")  # answers slow enough to overlap


def command(name: str) -> tuple[list[str], str]:
    """The client's command line and the directory it runs in."""
    if name == "python":
        return [sys.executable, "-m", "harness.clients.programs.python_sdk_client"], str(ROOT)
    if name == "node":
        return [require("node", "node"), str(JS_DIR / "client.mjs")], str(JS_DIR)
    if name == "bun":
        return [require(JS_DIR / "node_modules" / ".bin" / "bun", "bun (npm package)"), str(JS_DIR / "client.mjs")], str(JS_DIR)
    return [require(TOOLS / "bin" / "streamchaos-go-client", "the Go SDK contract client")], str(ROOT)


CLIENTS = ["python", "node", "bun", "go"]


def run(name: str, simulator, api_key: str, script: dict, extra: dict | None = None):
    argv, cwd = command(name)
    env = contract_env(simulator.base_url, api_key, script, simulator.ca_file, extra)
    return run_client(argv, env, deadline_s=30, cwd=cwd)


def requests(simulator, api_key: str) -> list[dict]:
    return sorted((r for r in simulator.journal(api_key) if r["kind"] == "request"), key=lambda r: r["t_headers"])


def answer_text(messages: list[dict]) -> str:
    """What the simulator answers to this conversation, as the Python client sends it."""
    body = {"model": "claude-sonnet-4-6", "max_tokens": 1024, "messages": messages}
    return generate(SEED, parse_messages_request(json.dumps(body).encode()), 40).summary()["text"]


def user(text: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


@pytest.mark.parametrize("name", CLIENTS)
def test_idle_then_parallel_parts_at_once_then_part_0_goes_on(start_simulator, api_key, name):
    # Paced answers (not on the shared simulator) take long enough that the parts must overlap.
    simulator = start_simulator(*PACED)
    prompt = "write at length\n@sc words=300"
    script = {
        "turns": [
            {"prompt": "first"},
            {"prompt": prompt, "parallel": 3, "idle_before_s": 0.5},
            {"prompt": "and now summarize"},
        ]
    }
    result = run(name, simulator, api_key, script)
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = result.turns
    assert [(line["turn"], line.get("part")) for line in lines] == [(0, None), (1, 0), (1, 1), (1, 2), (2, None)]
    records = requests(simulator, api_key)
    assert len(records) == 5
    first, parallel, last = records[0], records[1:4], records[4]

    # idle_before_s: nothing is sent for 0.5 s after the previous answer.
    assert min(r["t_headers"] for r in parallel) - first["t_end"] >= 0.5

    # parallel: 3 requests in flight at once, each its own conversation whose prompt is built as
    # the Python client builds it; a line per part, in part order, with that part's answer.
    assert max(r["t_headers"] for r in parallel) < min(r["t_end"] for r in parallel), "the parts did not overlap"
    history = [user("first"), assistant(answer_text([user("first")]))]
    assert lines[0]["text"] == history[1]["content"][0]["text"] == first["answer"]["text"]
    part_prompts = [f"{prompt}\n(part {k + 1} of 3)" for k in range(3)]
    wants = [answer_text([*history, user(p)]) for p in part_prompts]
    assert len(set(wants)) == 3
    assert [line["text"] for line in lines[1:4]] == wants
    answers = [r["answer"]["text"] for r in parallel]
    for line in lines[1:4]:
        assert answers.count(line["text"]) == 1

    # The next turn continues part 0's conversation (its prompt, its answer).
    want_last = answer_text([*history, user(part_prompts[0]), assistant(wants[0]), user("and now summarize")])
    assert lines[4]["text"] == want_last == last["answer"]["text"]


@pytest.mark.parametrize("name", CLIENTS)
def test_failed_part_prints_every_part_then_exits_1_and_env_retries_win(start_simulator, api_key, name):
    simulator = start_simulator("--seed", str(SEED))
    # The second request to arrive is overloaded. The script would retry it; the environment says no.
    simulator.load_plan({"faults": [{"type": "http_error", "status": 529, "select": {"requests": [2]}}]})
    script = {"max_retries": 3, "turns": [{"prompt": "go", "parallel": 3}, {"prompt": "never sent"}]}
    result = run(name, simulator, api_key, script, {"STREAMCHAOS_MAX_RETRIES": "0"})
    assert result.exit_code == 1, result.stdout + result.stderr
    assert [(line["turn"], line["part"]) for line in result.turns] == [(0, 0), (0, 1), (0, 2)]
    assert sum("error" in line for line in result.turns) == 1
    assert sorted(r["status"] for r in requests(simulator, api_key)) == [200, 200, 529]


@pytest.mark.parametrize("name", CLIENTS)
def test_script_max_retries(start_simulator, api_key, name):
    simulator = start_simulator("--seed", str(SEED))
    simulator.load_plan({"faults": [{"type": "http_error", "status": 529, "select": {"attempts": [1]}}]})
    script = {"max_retries": 0, "turns": [{"prompt": "hello"}]}
    result = run(name, simulator, api_key, script)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert [r["status"] for r in requests(simulator, api_key)] == [529]
    assert re.search(r"529|overload", result.error_line or "", re.I), result.error_line


@pytest.mark.parametrize("name", CLIENTS)
def test_script_timeout_s_ends_a_stall(start_simulator, api_key, name):
    simulator = start_simulator("--seed", str(SEED))
    simulator.load_plan({"faults": [{"type": "stall", "seconds": "inf", "trigger": {"at": "headers"}}]})
    script = {"max_retries": 0, "timeout_s": 1, "turns": [{"prompt": "hello"}]}
    result = run(name, simulator, api_key, script)
    assert not result.hung, "the client hung past its deadline"
    assert result.exit_code == 1, result.stdout + result.stderr
    assert re.search(r"time|deadline", result.error_line or "", re.I), result.error_line
    (request,) = requests(simulator, api_key)
    # Timed from the request (the client's start-up, an SDK import, is not the timeout's business).
    assert 0.9 <= result.ended - request["t_headers"] < 10, result.ended - request["t_headers"]
