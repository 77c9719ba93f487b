"""The data plane on the wire, seen from the client side: frames, chunks, ALPN, flow control."""

from __future__ import annotations

import json
import os
import signal

import hpack
import pytest

from tests.wire import DataFrame, GoAwayFrame, H2Probe, HeadersFrame, h1_exchange, post

BODY = {"model": "m", "max_tokens": 1000, "stream": True, "messages": [{"role": "user", "content": "hello\n@sc deltas=94"}]}


def complete(stream_id):
    return lambda probe: probe.ended(stream_id)


def test_h2c_prior_knowledge_streams_the_whole_answer(simulator):
    with H2Probe("127.0.0.1", simulator.port) as probe:
        stream = probe.request(body=BODY)
        assert probe.read_until(complete(stream))
        (_headers,) = probe.of(HeadersFrame, stream)
        events = probe.events(stream)
        assert len(events) == 100
        assert [e.name for e in events[:3]] == ["message_start", "ping", "content_block_start"]
        assert [e.name for e in events[-2:]] == ["message_delta", "message_stop"]
        # coalesced: 100 events in as few DATA frames as the frame size allows
        assert len([f for f in probe.of(DataFrame, stream) if f.data]) <= 2


def test_frame_per_event_mode_writes_one_data_frame_per_event(start_simulator):
    sim = start_simulator("--frame-per-event")
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=BODY)
        assert probe.read_until(complete(stream))
        frames = [f for f in probe.of(DataFrame, stream) if f.data]
        assert len(frames) == 100
        assert all(f.data.endswith(b"\n\n") and f.data.count(b"\nevent: ") == 0 for f in frames)


def test_h2_flow_control_with_a_tiny_client_window(simulator):
    with H2Probe("127.0.0.1", simulator.port, initial_window=300) as probe:
        stream = probe.request(body=BODY)
        assert probe.read_until(complete(stream), timeout_s=10)
        assert len(probe.events(stream)) == 100
        assert max(len(f.data) for f in probe.of(DataFrame, stream)) <= 300


def test_tls_alpn_selects_h2_and_http11(simulator):
    with H2Probe("127.0.0.1", simulator.port, tls=True, ca_file=simulator.ca_file) as probe:
        stream = probe.request(body=BODY)
        assert probe.read_until(complete(stream))
        assert len(probe.events(stream)) == 100
    result = h1_exchange("127.0.0.1", simulator.port, post("/v1/messages", BODY), tls=True, ca_file=simulator.ca_file, until_complete=True)
    assert result.status == 200 and b"transfer-encoding: chunked" in result.head.lower()
    assert len(result.events()) == 100


def test_http11_keep_alive_serves_two_answers_on_one_connection(simulator):
    request = post("/v1/messages", BODY)
    result = h1_exchange("127.0.0.1", simulator.port, request + request, until_complete=False, timeout_s=1.0)
    assert result.body.count(b"event: message_stop") == 2
    assert result.ended == "timeout"  # still open: keep-alive


@pytest.mark.parametrize(
    "path,method,status,error_type",
    [
        ("/v1/nothing", "POST", 404, "not_found_error"),
        ("/v1/messages", "GET", 405, "invalid_request_error"),
    ],
)
def test_routing_errors_have_the_real_body(simulator, path, method, status, error_type):
    raw = f"{method} {path} HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\ncontent-length: 0\r\n\r\n".encode()
    result = h1_exchange("127.0.0.1", simulator.port, raw, timeout_s=1.0)
    assert result.status == status
    body = json.loads(result.body)
    assert body["type"] == "error" and body["error"]["type"] == error_type and body["request_id"].startswith("req_")


def test_missing_key_is_401_on_h1_and_h2(simulator):
    raw = post("/v1/messages", BODY).replace(b"x-api-key: probe\r\n", b"")
    result = h1_exchange("127.0.0.1", simulator.port, raw, timeout_s=1.0)
    assert result.status == 401
    assert json.loads(result.body)["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}


def test_body_over_the_limit_is_413_on_both_protocols(start_simulator):
    sim = start_simulator("--max-body-bytes", "1000")
    big = dict(BODY, messages=[{"role": "user", "content": "x" * 5000}])
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", big), timeout_s=2.0)
    assert result.status == 413 and json.loads(result.body)["error"]["type"] == "request_too_large"
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=big)
        assert probe.read_until(complete(stream))
        (headers,) = probe.of(HeadersFrame, stream)
        assert dict(hpack.Decoder().decode(headers.data))[":status"] == "413"  # the connection's first HEADERS
        assert json.loads(probe.data(stream))["error"]["type"] == "request_too_large"


def test_sigterm_sends_graceful_goaway_and_lets_the_stream_finish(start_simulator):
    sim = start_simulator("--tokens-per-second", "200")
    with H2Probe("127.0.0.1", sim.port, timeout_s=10) as probe:
        stream = probe.request(body=dict(BODY, messages=[{"role": "user", "content": "slow\n@sc words=200 deltas=100"}]))
        assert probe.read_until(lambda p: len(p.events(stream)) >= 5)
        os.kill(sim.process.pid, signal.SIGTERM)
        probe.read_until(lambda p: p.closed is not None, timeout_s=10)
        goaways = probe.of(GoAwayFrame)
        assert goaways and goaways[0].error_code == 0 and goaways[0].last_stream_id == stream
        assert probe.ended(stream)
        assert [e.name for e in probe.events(stream)][-1] == "message_stop"
        assert probe.closed == "eof"
    assert sim.process.wait(10) == 0
