"""Arbitrary and malformed requests always get a well-formed answer: 200, or a 4xx with the real
error body. Pure (no sockets) for volume, then on the wire for the transports."""

from __future__ import annotations

import json
import socket

from hypothesis import HealthCheck, given, settings, strategies as st

from harness.wire import h1_exchange
from simulator.api.router import JsonReply, MessagesApi, StreamReply, describe
from simulator.config import SimulatorConfig

API = MessagesApi(SimulatorConfig(max_body_bytes=4096))
KEY = [(b"x-api-key", b"k")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["role", "content", "type", "text", "x"]) | st.text(max_size=6), inner, max_size=4),
    max_leaves=15,
)
fields = st.fixed_dictionaries({}, optional={
    "model": json_values | st.just("claude-sonnet-4-6"),
    "max_tokens": json_values | st.integers(1, 100),
    "messages": json_values | st.just([{"role": "user", "content": "hi"}]),
    "stream": json_values,
    "thinking": json_values | st.just({"type": "adaptive"}),
    "tools": json_values,
    "tool_choice": json_values,
})


def check(reply) -> None:
    if isinstance(reply, StreamReply):
        assert reply.events[-1].name == "message_stop"
        return
    assert isinstance(reply, JsonReply)
    body = json.loads(reply.body)
    if reply.status == 200:
        assert body.get("type") == "message" or "input_tokens" in body or "data" in body or body.get("type") == "model"
        return
    assert 400 <= reply.status < 500
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["request_id"].startswith("req_")


@given(st.binary(max_size=300))
def test_arbitrary_bytes(body):
    check(API.handle(describe("POST", "/v1/messages", KEY, body), body, API.new_request_id()))


@given(fields)
def test_arbitrary_json_requests(data):
    body = json.dumps(data).encode()
    check(API.handle(describe("POST", "/v1/messages", KEY, body), body, API.new_request_id()))


@given(fields, st.sampled_from(["/v1/messages/count_tokens", "/v1/models", "/v1/models/claude-opus-4-7", "/v1/x", "/"]), st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
def test_arbitrary_routes(data, path, method):
    body = json.dumps(data).encode()
    check(API.handle(describe(method, path, KEY, body), body, API.new_request_id()))


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=12), st.binary(max_size=40)), max_size=4))
def test_arbitrary_headers(headers):
    body = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}).encode()
    check(API.handle(describe("POST", "/v1/messages", headers, body), body, API.new_request_id()))


header_bytes = st.binary(min_size=0, max_size=30).filter(lambda b: b"\r\n\r\n" not in b)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request_line=st.one_of(st.just(b"POST /v1/messages HTTP/1.1"), st.binary(max_size=40).filter(lambda b: b"\r\n" not in b)),
       headers=st.lists(st.tuples(header_bytes, header_bytes), max_size=4), body=st.binary(max_size=200))
def test_malformed_http11_always_answered_4xx_json_never_hangs(simulator, request_line, headers, body):
    lines = [request_line, b"host: x", b"x-api-key: k", b"content-length: %d" % len(body)]
    lines += [name + b": " + value for name, value in headers]
    raw = b"\r\n".join(lines) + b"\r\n\r\n" + body
    sock = socket.create_connection(("127.0.0.1", simulator.port), timeout=5)
    try:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)  # a peer that stops sending must still get an answer
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    if not data:
        return  # an empty request line: the peer said nothing, the server closed
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert status == 200 or 400 <= status < 500, head
    if status != 200:
        length = [int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        error = json.loads(payload[: length[0]] if length else payload)  # a pipelined second request gets its own answer after this one
        assert error["type"] == "error" and error["error"]["type"] and error["error"]["message"]
    # and the server is still serving
    ok = h1_exchange("127.0.0.1", simulator.port, b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\nconnection: close\r\n\r\n", timeout_s=2)
    assert ok.status == 200
