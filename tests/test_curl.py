"""curl --http2 against the simulator: h2 over TLS by ALPN, and h2c with prior knowledge."""

from __future__ import annotations

import json
import subprocess

import pytest

from harness.clients.script import first_request_body
from simulator import sse
from tests.support import expected_first_turn, require

PLAN = {"model": "claude-sonnet-4-6", "turns": [{"prompt": "curl me\n@sc words=70 thinking_words=30", "thinking": True}]}


@pytest.mark.parametrize("mode", ["h2-tls", "h2c"])
def test_curl_http2_streams_the_generated_answer(simulator, api_key, mode):
    curl = require("curl", "curl")
    body = json.dumps(first_request_body(PLAN, stream=True))
    url = f"https://localhost:{simulator.port}/v1/messages" if mode == "h2-tls" else f"{simulator.base_url}/v1/messages"
    flags = ["--http2", "--cacert", simulator.ca_file] if mode == "h2-tls" else ["--http2-prior-knowledge"]
    done = subprocess.run(
        [
            curl,
            "-sS",
            "-N",
            *flags,
            "-H",
            f"x-api-key: {api_key}",
            "-H",
            "content-type: application/json",
            "-w",
            "\\n%{http_version}",
            "--data-binary",
            body,
            url,
        ],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    output, _, version = done.stdout.rpartition(b"\n")
    assert version == b"2"
    events = sse.Decoder().feed(output)
    deltas = [e.json()["delta"] for e in events if e.name == "content_block_delta"]
    want = expected_first_turn(7, PLAN)
    assert "".join(d.get("text", "") for d in deltas) == want["text"]
    assert "".join(d.get("thinking", "") for d in deltas) == want["thinking"]
    assert events[-1].name == "message_stop"
    (request,) = [r for r in simulator.journal(api_key) if r["kind"] == "request"]
    assert request["protocol"] == "h2" and request["tls"] is (mode == "h2-tls") and request["end"] == "complete"
