"""The official TypeScript SDK, from npm, parses the simulator's answers exactly, on Node and on Bun.

One client file (harness/clients/js/client.mjs) runs under Node 20 (undici fetch, HTTP/1.1 only) and
under Bun from the `bun` npm package (its own fetch: HTTP/1.1, or h2 by ALPN with
BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP2_CLIENT=1). Both trust the simulator's CA via NODE_EXTRA_CA_CERTS.
"""

from __future__ import annotations

import json

import pytest

from harness.clients.launch import contract_env, run_client
from tests.support import ROOT, assert_turn_matches, expected_first_turn, require, tool_then_text_plan
from tests.test_python_sdk import PLANS

pytestmark = pytest.mark.clients

JS_DIR = ROOT / "harness" / "clients" / "js"
CLIENT = JS_DIR / "client.mjs"
SDK_DIR = JS_DIR / "node_modules" / "@anthropic-ai" / "sdk"
BUN = JS_DIR / "node_modules" / ".bin" / "bun"
SEED = 7  # the session simulator's seed
BUN_H2_FLAG = {"BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP2_CLIENT": "1"}

# name: (runtime, tls, extra env, protocol the simulator's journal records)
RUNS = {
    "node-tls": ("node", True, {}, "http/1.1"),
    "node-http": ("node", False, {}, "http/1.1"),
    "bun-tls": ("bun", True, {}, "http/1.1"),
    "bun-h2-flag": ("bun", True, BUN_H2_FLAG, "h2"),  # ALPN offers h2 and the simulator picks it
}


def sdk_version() -> str:
    require(SDK_DIR, "the TypeScript SDK (@anthropic-ai/sdk)")
    return json.loads((SDK_DIR / "package.json").read_text())["version"]


def command(runtime: str) -> list[str]:
    sdk_version()
    if runtime == "bun":
        return [require(BUN, "bun (npm package)"), str(CLIENT)]
    return [require("node", "node"), str(CLIENT)]


def base_url(simulator, tls: bool) -> str:
    return f"https://localhost:{simulator.port}" if tls else simulator.base_url


def run_js(simulator, api_key: str, name: str, plan: dict):
    runtime, tls, extra, _ = RUNS[name]
    env = contract_env(base_url(simulator, tls), api_key, plan, simulator.ca_file, {"STREAMCHAOS_MAX_RETRIES": "0", **extra})
    return run_client(command(runtime), env, deadline_s=60, cwd=str(JS_DIR))


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "create"])
@pytest.mark.parametrize("shape", sorted(PLANS))
@pytest.mark.parametrize("name", list(RUNS))
def test_js_sdk_accumulates_the_generated_answer(simulator, api_key, name, shape, stream):
    plan = json.loads(json.dumps(PLANS[shape]))
    for turn in plan["turns"]:
        turn["stream"] = stream
    run = run_js(simulator, api_key, name, plan)
    assert run.exit_code == 0, run.stdout + run.stderr
    (got,) = run.turns
    want = expected_first_turn(SEED, plan)
    assert_turn_matches(got, want)

    _, tls, _, protocol = RUNS[name]
    records = simulator.journal(api_key)
    (request,) = [r for r in records if r["kind"] == "request"]
    assert request["user_agent"] == f"Anthropic/JS {sdk_version()}"
    assert request["answer"]["text"] == want["text"]
    assert request["end"] == "complete" and request["status"] == 200 and request["stream"] is stream
    assert request["protocol"] == protocol
    assert request["tls"] is tls
    if stream:
        assert request["events_out"] == request["events_total"]
    (connection,) = [r for r in records if r["kind"] == "connection"]
    assert connection["protocol"] == protocol and connection["tls"] is tls
    if tls:
        assert connection["alpn"] == protocol


@pytest.mark.parametrize("name", ["node-tls", "bun-tls", "bun-h2-flag"])
def test_js_sdk_multi_turn_tool_use_then_text(simulator, api_key, name):
    plan = tool_then_text_plan()
    run = run_js(simulator, api_key, name, plan)
    assert run.exit_code == 0, run.stdout + run.stderr
    first, second = run.turns
    assert first["stop_reason"] == "tool_use" and first["tool_uses"][0]["input"] == {"command": "sleep 2"}
    assert second["stop_reason"] == "end_turn" and second["text"]
    requests = [r for r in simulator.journal(api_key) if r["kind"] == "request"]
    assert [r["answer"]["text"] for r in requests] == [first["text"], second["text"]]
    # the second request carries the assistant's blocks and the tool_result, as the Python client sends them
    assert requests[1]["body_bytes"] > requests[0]["body_bytes"]
    connections = len({r["conn"] for r in requests})
    if RUNS[name][0] == "bun":
        assert connections == 1  # both turns went over one pooled connection
    else:
        # undici puts a socket back in its pool a tick after the body ends, so a request sent at once
        # opens a second connection (it does so against node:http's own server too)
        assert connections <= 2


@pytest.mark.parametrize("name", ["node-tls", "bun-tls"])
def test_js_sdk_reports_an_api_error_and_exits_1(simulator, api_key, name):
    plan = {"turns": [{"prompt": "x\n@sc words=abc"}]}
    run = run_js(simulator, api_key, name, plan)
    assert run.exit_code == 1, run.stdout + run.stderr
    (got,) = run.turns
    assert got["turn"] == 0
    assert got["error"].startswith("BadRequestError: 400 ") and "invalid_request_error" in got["error"]


@pytest.mark.parametrize(
    "runtime, cause",
    [
        ("node", "APIConnectionError: Connection error. (cause: fetch failed: "),
        ("bun", "APIConnectionError: Connection error. (cause: "),
    ],
)
def test_js_sdk_reports_the_cause_of_a_connection_error(simulator, api_key, runtime, cause):
    # a TLS client that does not trust the simulator's CA: a connection error on either runtime, no retry
    plan = {"turns": [{"prompt": "hello"}]}
    env = contract_env(base_url(simulator, True), api_key, plan, None, {"STREAMCHAOS_MAX_RETRIES": "0", "NODE_EXTRA_CA_CERTS": ""})
    run = run_client(command(runtime), env, deadline_s=60, cwd=str(JS_DIR))
    assert run.exit_code == 1, run.stdout + run.stderr
    (got,) = run.turns
    assert got["error"].startswith(cause) and "certificate" in got["error"], got
