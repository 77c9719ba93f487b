"""Triggers and selectors on the wire, seen from the client side with raw sockets: exactly N bytes
or events, inside a block, at accept or after TLS, T ms after the headers, the k-th attempt, lanes.
Each fault type's own wire test is beside it."""

from __future__ import annotations

import errno
import socket
import ssl
import time

import pytest

from tests.faults.client import BODY, THINKING, records
from tests.wire import dechunk, h1_exchange, post


def test_bytes_trigger_cuts_at_exactly_n_body_bytes(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "bytes", "value": 1000}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY, key="b1000"))
    assert result.ended == "reset"
    assert len(dechunk(result.body)) == 1000


def test_reset_inside_the_thinking_block(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "events", "value": 5, "block": "thinking"}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", THINKING, key="think"))
    events = result.events()
    assert result.ended == "reset"
    deltas = [e.json()["delta"]["type"] for e in events if e.name == "content_block_delta"]
    assert deltas == ["thinking_delta"] * 5


# -- accept-time -----------------------------------------------------------------------------


def test_reset_on_accept_for_the_first_connections_only(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "accept"}, "select": {"connections": [1, 2]}})
    outcomes = [h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY, key="acc"), until_complete=True).ended for _ in range(3)]
    assert outcomes == ["reset", "reset", "complete"]


def test_reset_after_the_tls_handshake_before_any_http(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "tls"}, "select": {"connections": [1]}})
    context = ssl.create_default_context(cafile=sim.ca_file)
    with context.wrap_socket(socket.create_connection(("127.0.0.1", sim.port), timeout=3), server_hostname="localhost") as sock:
        assert sock.version()  # the handshake completed
        time.sleep(0.2)
        # Python's ssl reports a peer's RST as EOF, so ask the kernel: the error is pending.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET


def test_time_trigger_fires_t_ms_after_the_headers(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "ms", "value": 300}}, {"type": "slow", "tokens_per_second": 100})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY, key="ms300"))
    assert result.ended == "reset"
    # In the server's clock: the reset came 300 ms after the request's headers, never before (idle
    # it is 0-3 ms late; 1.5 s of slack covers fully busy cores), and the client got exactly
    # what the server had written by then.
    (request,) = records(sim, "ms300")
    (fired,) = [note for note in request["faults"] if note["type"] == "tcp_reset"]
    assert 0.3 <= fired["t"] - request["t_headers"] < 1.8, fired["t"] - request["t_headers"]
    assert len(result.events()) == fired["events_out"] > 0


def test_only_the_kth_attempt_is_hit(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "events", "value": 3}, "select": {"attempts": [2]}})
    outcomes = [h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY, key="kth"), until_complete=True).ended for _ in range(3)]
    assert outcomes == ["complete", "reset", "complete"]
    assert [r["decision"]["attempt"] for r in records(sim, "kth")] == [1, 2, 3]


def test_faults_apply_to_non_streaming_requests(sim, plan):
    plan({"type": "fin", "trigger": {"at": "bytes", "value": 40}})
    body = dict(BODY, stream=False)
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", body))
    assert result.status == 200 and result.ended == "eof" and len(result.body) == 40


def test_bad_plans_are_refused_with_the_key_path(sim):
    with pytest.raises(ValueError, match=r"faults\[0\]\.trigger\.at"):
        sim.load_plan({"faults": [{"type": "http_error", "trigger": {"at": "events", "value": 3}}]})
    with pytest.raises(ValueError, match=r"faults\[0\]\.code"):
        sim.load_plan({"faults": [{"type": "rst_stream", "code": "NOPE"}]})


def test_lanes_count_accept_faults_per_trial(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "accept"}, "select": {"connections": [1]}})
    lanes = {trial: sim.open_lane(trial) for trial in ("A", "B")}
    try:
        outcomes = {
            trial: [h1_exchange("127.0.0.1", port, post("/v1/messages", BODY, key=trial), until_complete=True).ended for _ in range(2)]
            for trial, port in lanes.items()
        }
    finally:
        for port in lanes.values():
            sim.close_lane(port)
    assert outcomes == {"A": ["reset", "complete"], "B": ["reset", "complete"]}  # the first of each trial
    (request,) = records(sim, "A")
    assert request["decision"]["trial"] == "A" and request["decision"]["connection"] == 2
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", lanes["A"]), timeout=2)
