"""Helpers shared by the tests (and the benchmarks): scenario files, the CLI and the known client, and
what the tests of real clients send and check."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from harness import scenario
from harness.clients.script import first_request_body as contract_first_request_body
from simulator.api.answer import generate
from simulator.api.request import parse_messages_request

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
IN_CI = os.environ.get("CI") == "true"
KNOWN = f"{sys.executable} {ROOT / 'tests' / 'clients' / 'known_client.py'}"
"""The known test client's command line; its mode (fixed-retry, never-retry, ...) follows."""
CLI = [sys.executable, "-m", "harness.cli"]
"""``streamchaos`` as a command list (the tree's own harness)."""


def known_client_args(mode: str, results: Path, run_id: str) -> list[str]:
    """A run's options for the known client in ``mode`` (named after it), and where the run goes."""
    return ["--client-cmd", f"{KNOWN} {mode}", "--client-name", mode, "--results", str(results), "--run-id", run_id]


def scenario_toml(name: str, seed: int, trials: int, words: int = 40, deltas: int | None = 20, extra: str = "", faults: str = "") -> str:
    """A one-transport (HTTP/1.1, no TLS) scenario file's text; ``extra`` lines go before
    ``[conversation]``, ``faults`` (``[[faults]]`` tables) after it."""
    lines = ["version = 1", f'name = "{name}"', f"seed = {seed}", f"trials = {trials}", 'transports = ["http/1.1"]', "tls = false"]
    lines += [line for line in textwrap.dedent(extra).splitlines() if line.strip()]
    lines += ["[conversation]", f"words = {words}"] + ([f"deltas = {deltas}"] if deltas is not None else [])
    return "\n".join(lines) + "\n" + textwrap.dedent(faults).lstrip("\n")


def reset_fault(probability: float, events: int = 8) -> str:
    """A tcp_reset ``[[faults]]`` table: after ``events`` events, with this probability."""
    return f'[[faults]]\ntype = "tcp_reset"\ntrigger = {{ at = "events", value = {events} }}\nselect = {{ probability = {probability} }}\n'


def bad_scenario(tmp_path: Path, text: str) -> scenario.ScenarioError:
    """The error loading this scenario text raises; it names the file."""
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(scenario.ScenarioError) as error:
        scenario.load(path)
    assert str(path) in str(error.value)
    return error.value


def require(path: Path | str, what: str) -> str:
    """A tool `make setup` installs: missing is a failure in CI, a skip on a developer's machine."""
    found = str(path) if Path(path).exists() else shutil.which(str(path))
    if not found:
        message = f"{what} is not installed ({path}); run `make setup`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def python_sdk_transport(simulator, mode: str) -> tuple[str, dict]:
    """Base URL and environment of a Python SDK client for the mode http1, h2-tls or h2c."""
    if mode == "http1":
        return simulator.base_url, {}
    if mode == "h2-tls":
        return f"https://localhost:{simulator.port}", {"STREAMCHAOS_HTTP2": "1"}
    return simulator.base_url, {"STREAMCHAOS_HTTP2": "prior-knowledge"}


def tool_then_text_plan() -> dict:
    """A client script of two turns: a Bash tool use, then text."""
    tools = [{"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]
    return {
        "model": "claude-sonnet-4-6",
        "turns": [
            {"prompt": 'go\n@sc tool=Bash input={"command":"sleep 2"}', "tools": tools},
            {"prompt": "and now summarize", "tools": tools},
        ],
    }


def first_request_body(plan: dict) -> bytes:
    return json.dumps(contract_first_request_body(plan)).encode()


def expected_first_turn(seed: int, plan: dict, default_words: int = 40) -> dict:
    """What the generator answers to the first turn: text, thinking, tool uses, stop_reason, usage."""
    return generate(seed, parse_messages_request(first_request_body(plan)), default_words).summary()


def assert_turn_matches(got: dict, want: dict) -> None:
    assert got.get("error") is None, got
    assert got["text"] == want["text"]
    assert got["thinking"] == want["thinking"]
    assert got["tool_uses"] == want["tool_uses"]
    assert got["stop_reason"] == want["stop_reason"]
    assert got["usage"]["output_tokens"] == want["output_tokens"]
    assert got["usage"]["input_tokens"] == want["input_tokens"]


def assert_one_complete_request(simulator, api_key: str, want: dict, stream: bool, protocol: str, tls: bool) -> dict:
    """The journal saw exactly one request for the key, served whole with the generated answer."""
    (request,) = [r for r in simulator.journal(api_key) if r["kind"] == "request"]
    assert request["answer"]["text"] == want["text"]
    assert request["end"] == "complete" and request["status"] == 200 and request["stream"] is stream
    assert request["protocol"] == protocol and request["tls"] is tls
    if stream:
        assert request["events_out"] == request["events_total"]
    return request
