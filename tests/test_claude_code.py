"""The real Claude Code (npm ``@anthropic-ai/claude-code``, native binary) against the simulator.

Each run gets its own HOME under tmp_path, talks https://localhost:PORT with the simulator's CA,
and has a refusing loopback proxy as a safety net; `ss` is sampled during the run to check that
its sockets only ever reach loopback.
"""

from __future__ import annotations

import pytest

from harness.clients.adapters.claude_code import CLAUDE_BIN, ClaudeCodeOptions, claude_code_command
from tests.clients.claude_code import api_requests, retry_attempts, run_claude_code, tool_results
from tests.support import require

pytestmark = [pytest.mark.clients, pytest.mark.slow]

LOOPBACK = {"127.0.0.1", "::1"}
DEADLINE_S = 60
# Claude Code 2.1.330's first request carries a mid-conversation `role: "system"` message (beta
# per-turn-control-2026-07-01); the simulator accepts it, so every request must be answered 200.


def run(sim, api_key, tmp_path, prompt, options=ClaudeCodeOptions()):
    binary = require(CLAUDE_BIN, "Claude Code (harness/clients/claude_code: npm ci)")
    command = claude_code_command(
        prompt,
        f"https://localhost:{sim.port}",
        api_key,
        sim.ca_file,
        DEADLINE_S,
        tmp_path / "home",
        options,
        binary,
    )
    require("ss", "ss (iproute2; make setup installs it)")  # the loopback check needs it: no silent gap
    result = run_claude_code(command, watch_sockets=True)
    requests = sorted((r for r in sim.journal(api_key) if r["kind"] == "request"), key=lambda r: r["t_headers"])
    connections = [r for r in sim.journal(api_key) if r["kind"] == "connection"]
    print(f"\nclaude: exit {result.run.exit_code} in {result.run.elapsed_s:.2f} s; peers {sorted(result.peers)}")
    for r in requests:
        print(
            f"  {r['method']} {r['path']} -> {r['status']} {r['end']}; body {r['body_bytes']} B; conn {r['conn']} "
            f"{r['protocol']} tls={r['tls']}; retry-count {r['retry_count']}; {r['user_agent']}"
        )
    return result, requests, connections


def check_common(result, requests, connections, api_key, long_lived=False):
    assert result.run.exit_code == 0, result.run.stdout + result.run.stderr
    assert requests, "Claude Code reached the simulator with this key"
    assert not [r for r in requests if r["status"] == 404], "Claude Code called an endpoint the simulator lacks"
    for r in requests:
        assert r["path"] == "/v1/messages?beta=true" and r["method"] == "POST"
        assert r["key"] == api_key and r["end"] == "complete" and r["tls"] is True
        assert r["user_agent"].startswith("claude-cli/2.1.330 ") and r["retry_count"] == 0
        assert r["status"] == 200, r
    assert all(request["params"]["thinking"]["type"] == "adaptive" for request in api_requests(result.home))
    assert retry_attempts(result.home) == []  # no fault, no retry
    assert {c["peer"].rsplit(":", 1)[0] for c in connections} <= LOOPBACK
    assert result.peers <= LOOPBACK, f"Claude Code connected beyond loopback: {result.peers}"
    if long_lived:  # open through `sleep 1`: sampling every 50 ms must see it
        assert result.peers, "ss saw Claude Code's connection to the simulator"


def test_claude_code_prints_the_simulated_answer(start_simulator, api_key, tmp_path):
    sim = start_simulator("--seed", "11")
    result, requests, connections = run(sim, api_key, tmp_path, "Say something short.\n@sc words=25")
    check_common(result, requests, connections, api_key)
    final = requests[-1]
    assert final["status"] == 200 and final["stream"] is True
    assert final["events_out"] == final["events_total"]
    assert final["answer"]["stop_reason"] == "end_turn"
    assert len(final["answer"]["text"].split()) == 25
    assert result.run.stdout.rstrip() == final["answer"]["text"].rstrip()
    assert final["body_bytes"] > 20_000  # system prompt + a dozen tool schemas (~49 KB in 2.1.330)


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2"])
def test_claude_code_runs_the_tool_and_sends_its_result(start_simulator, api_key, tmp_path, http2):
    sim = start_simulator("--seed", "11")
    prompt = 'Run it.\n@sc tool=Bash input={"command":"sleep 1"}'
    result, requests, connections = run(sim, api_key, tmp_path, prompt, ClaudeCodeOptions(http2=http2))
    check_common(result, requests, connections, api_key, long_lived=True)
    assert len(requests) == 2, requests
    first, second = requests
    (tool_use,) = first["answer"]["tool_uses"]
    assert first["answer"]["stop_reason"] == "tool_use"
    assert tool_use["name"] == "Bash" and tool_use["input"] == {"command": "sleep 1"}
    # Claude Code ran `sleep 1`: the follow-up came a second later and carried the tool_result,
    # which is what makes the simulator answer with text.
    (sent,) = tool_results(result.home)
    assert sent["tool_use_id"] == tool_use["id"] and sent.get("is_error") is False
    assert second["t_headers"] - first["t_end"] >= 1.0
    assert second["answer"]["stop_reason"] == "end_turn" and not second["answer"]["tool_uses"]
    assert second["body_bytes"] > first["body_bytes"]
    assert result.run.stdout.rstrip() == second["answer"]["text"].rstrip()
    # Observed on 2.1.330 (Bun fetch): every request of the run rides one
    # pooled connection, HTTP/1.1 keep-alive by default, h2 streams 1, 3, 5 with the Bun flag.
    assert len({r["conn"] for r in requests}) == 1
    assert all(r["protocol"] == ("h2" if http2 else "http/1.1") for r in requests)
    if http2:
        assert [r["stream_id"] for r in requests] == list(range(1, 2 * len(requests), 2))
