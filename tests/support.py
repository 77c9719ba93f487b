"""Helpers shared by the tests of real clients."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from harness.clients.script import first_request_body as contract_first_request_body
from simulator.api.answer import generate
from simulator.api.request import parse_messages_request

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
IN_CI = os.environ.get("CI") == "true"


def require(path: Path | str, what: str) -> str:
    """A tool `make setup` installs: missing is a failure in CI, a skip on a developer's machine."""
    found = str(path) if Path(path).exists() else shutil.which(str(path))
    if not found:
        message = f"{what} is not installed ({path}); run `make setup`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


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
