"""Arbitrary and malformed requests always get a well-formed answer: 200, or a 4xx with the real
error body. Pure (no sockets) for volume, then on the wire for the transports."""

from __future__ import annotations

import json
import socket

import h11
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simulator.api.answer import generate, message_object
from simulator.api.request import parse_messages_request
from simulator.api.router import MODELS, JsonReply, MessagesApi, StreamReply, describe
from simulator.config import SimulatorConfig
from tests.wire import h1_exchange

API = MessagesApi(SimulatorConfig(max_body_bytes=4096))
KEY = [(b"x-api-key", b"k")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["role", "content", "type", "text", "x"]) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=15,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values | st.just("claude-sonnet-4-6"),
        "max_tokens": json_values | st.integers(1, 100),
        "messages": json_values | st.just([{"role": "user", "content": "hi"}]),
        "stream": json_values,
        "thinking": json_values | st.just({"type": "adaptive"}),
        "tools": json_values,
        "tool_choice": json_values,
    },
)


def check(reply, path: str = "/v1/messages", body: bytes = b"") -> None:
    """A stream ends in message_stop; a 200 is exactly what its route answers; anything else is a
    4xx with the real error body."""
    if isinstance(reply, StreamReply):
        assert reply.events[-1].name == "message_stop"
        return
    assert isinstance(reply, JsonReply)
    got = json.loads(reply.body)
    if reply.status == 200:
        assert path in OK_ROUTES, (path, got)
        if path == "/v1/messages":
            request_id = dict(reply.headers)[b"request-id"].decode()
            want = message_object(generate(0, parse_messages_request(body), 40), "msg_" + request_id[4:], json.loads(body)["model"])
            assert got == want
        elif path == "/v1/messages/count_tokens":
            assert set(got) == {"input_tokens"} and isinstance(got["input_tokens"], int) and got["input_tokens"] >= 0
        elif path == "/v1/models":
            assert [m["id"] for m in got["data"]] == [m[0] for m in MODELS]
            assert got["has_more"] is False and got["first_id"] == MODELS[0][0] and got["last_id"] == MODELS[-1][0]
        else:
            assert got == {"type": "model", "id": path.rsplit("/", 1)[1], "display_name": got["display_name"], "created_at": got["created_at"]}
        return
    assert 400 <= reply.status < 500
    assert got["type"] == "error" and set(got["error"]) == {"type", "message"}
    assert isinstance(got["error"]["message"], str) and got["error"]["message"]
    assert got["request_id"].startswith("req_")


OK_ROUTES = {"/v1/messages", "/v1/messages/count_tokens", "/v1/models", *(f"/v1/models/{m[0]}" for m in MODELS)}


@given(st.binary(max_size=300))
def test_arbitrary_bytes(body):
    check(API.handle(describe("POST", "/v1/messages", KEY, body), body, API.new_request_id()), body=body)


@given(fields)
def test_arbitrary_json_requests(data):
    body = json.dumps(data).encode()
    check(API.handle(describe("POST", "/v1/messages", KEY, body), body, API.new_request_id()), body=body)


@given(
    fields,
    st.sampled_from(["/v1/messages/count_tokens", "/v1/models", f"/v1/models/{MODELS[0][0]}", "/v1/models/nope", "/v1/x", "/"]),
    st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
)
def test_arbitrary_routes(data, path, method):
    body = json.dumps(data).encode()
    check(API.handle(describe(method, path, KEY, body), body, API.new_request_id()), path, body)


def test_the_200_check_is_exact():
    """The checks above fail on a 200 that is not exactly the route's answer."""
    body = json.dumps({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}).encode()
    reply = API.handle(describe("POST", "/v1/messages", KEY, body), body, API.new_request_id())
    check(reply, body=body)
    tampered = json.loads(reply.body)
    tampered["content"][0]["text"] += " extra"
    with pytest.raises(AssertionError):
        check(JsonReply(200, reply.headers, json.dumps(tampered).encode()), body=body)
    with pytest.raises(AssertionError):  # a 200 that merely contains "data" is not the models list
        check(JsonReply(200, reply.headers, b'{"data": []}'), "/v1/models")


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=12), st.binary(max_size=40)), max_size=4))
def test_arbitrary_headers(headers):
    body = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}).encode()
    check(API.handle(describe("POST", "/v1/messages", headers, body), body, API.new_request_id()), body=body)


header_bytes = st.binary(min_size=0, max_size=30).filter(lambda b: b"\r\n\r\n" not in b)


def read_all(port: int, raw: bytes) -> bytes:
    """Send, half-close (a peer that stops sending must still get its answer), read to EOF. A reset
    is a failure: the server closes cleanly (FIN after a half-close), never destroying its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        for _ in range(10_000):
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    raise AssertionError("the server kept sending")


def parse_responses(data: bytes) -> list[tuple[h11.Response, bytes]]:
    """Split a byte stream into HTTP/1.1 responses with h11's client side; nothing may be left over."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(data)
    client.receive_data(b"")
    out = []
    while True:
        if not client.trailing_data[0]:
            return out  # the server closed after its last answer
        client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
        event = client.next_event()
        if isinstance(event, h11.ConnectionClosed):
            return out
        assert isinstance(event, h11.Response), event
        body = b""
        while not isinstance(part := client.next_event(), h11.EndOfMessage):
            assert isinstance(part, h11.Data), part
            body += part.data
        out.append((event, body))
        if client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
            assert isinstance(client.next_event(), h11.ConnectionClosed), "bytes after a connection: close answer"
            return out
        client.start_next_cycle()


def check_answers(responses, one_request: bool) -> None:
    """Answer once and close: every answer is 200 or a 4xx with the real error body; a malformed
    request gets exactly one answer, the last, with connection: close; a single well-framed request
    gets exactly one answer."""
    assert responses, "no answer at all"
    if one_request:
        assert len(responses) == 1, [r.status_code for r, _ in responses]
    for index, (head, body) in enumerate(responses):
        assert head.status_code == 200 or 400 <= head.status_code < 500, head
        if head.status_code != 200:
            error = json.loads(body)
            assert error["type"] == "error" and error["error"]["type"] and error["error"]["message"]
            assert error["request_id"] == dict(head.headers)[b"request-id"].decode()
            if error["error"]["message"].startswith("Malformed HTTP request"):
                assert index == len(responses) - 1, "an answer after a malformed request"
                assert (b"connection", b"close") in head.headers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    request_line=st.one_of(st.just(b"POST /v1/messages HTTP/1.1"), st.binary(max_size=40).filter(lambda b: b"\r\n" not in b)),
    headers=st.lists(st.tuples(header_bytes, header_bytes), max_size=4),
    body=st.binary(max_size=200),
)
@example(request_line=b"POST /v1/messages HTTP/1.1", headers=[(b"\n", b"")], body=b"")  # failed once: two answers, parsed as one
def test_malformed_http11_always_answered_4xx_json_never_hangs(simulator, request_line, headers, body):
    lines = [request_line, b"host: x", b"x-api-key: k", b"content-length: %d" % len(body)]
    lines += [name + b": " + value for name, value in headers]
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    raw = head + body
    # One request on the wire unless a header value ends the head early (then the rest is parsed
    # as what follows a complete request: a second request, most likely malformed).
    one_request = raw.find(b"\r\n\r\n") == len(head) - 4
    check_answers(parse_responses(read_all(simulator.port, raw)), one_request)
    # and the server is still serving
    ok = h1_exchange("127.0.0.1", simulator.port, b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\nconnection: close\r\n\r\n", timeout_s=2)
    assert ok.status == 200


def test_bare_lf_in_the_head_is_answered_once_and_closed(simulator):
    """The example that once failed: the bare LF ended h11's head early, the server answered the
    empty body and then the bytes after it. Now the head is malformed: one 400, then FIN."""
    raw = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\ncontent-length: 0\r\n\n: \r\n\r\n"
    ((head, body),) = parse_responses(read_all(simulator.port, raw))
    assert head.status_code == 400 and (b"connection", b"close") in head.headers
    assert json.loads(body)["error"] == {
        "type": "invalid_request_error",
        "message": "Malformed HTTP request: bare LF in the request head: lines must end with CRLF",
    }


def test_pipelined_requests_are_answered_in_order_until_the_first_malformed_one(simulator):
    good = b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\n\r\n"
    bad = b"NOT A REQUEST\r\n\r\n"
    responses = parse_responses(read_all(simulator.port, good + good + bad + good))
    assert [r.status_code for r, _ in responses] == [200, 200, 400]
    assert json.loads(responses[2][1])["error"]["message"].startswith("Malformed HTTP request: illegal request line")
    assert (b"connection", b"close") in responses[2][0].headers
