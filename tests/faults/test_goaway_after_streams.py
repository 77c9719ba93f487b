"""goaway_after_streams on the wire: a connection's quota of requests, then a graceful end (HTTP/2
GOAWAY NO_ERROR, HTTP/1.1 ``connection: close``); its validation and its pure decision."""

from __future__ import annotations

import socket

import pytest

from simulator.faults import FaultPlan, PlanError
from simulator.faults.decide import RequestFacts, request_rules
from tests.faults.client import BODY, names, records
from tests.wire import GoAwayFrame, H2Probe, HeadersFrame, RstStreamFrame, post

QUOTA = {"type": "goaway_after_streams", "streams": 3, "grace_s": 5}


def facts(on_connection: int) -> RequestFacts:
    return RequestFacts(
        trial="t",
        logical="L",
        attempt=1,
        connection=1,
        request=on_connection,
        elapsed_s=0.0,
        streaming=True,
        path="/v1/messages",
        protocol="h2",
        on_connection=on_connection,
    )


def test_it_takes_only_the_connections_nth_request():
    plan = FaultPlan.from_data({"faults": [QUOTA]})
    assert [n for n in range(1, 8) if request_rules(plan, facts(n))] == [3]


@pytest.mark.parametrize(
    "bad,path",
    [
        ({"streams": 0}, "faults[0].streams"),
        ({"streams": 2.5}, "faults[0].streams"),
        ({"grace_s": -1}, "faults[0].grace_s"),
        ({"trigger": {"at": "events", "value": 3}}, "faults[0].trigger.at"),
        ({"trigger": {"at": "accept"}}, "faults[0].trigger.at"),
    ],
)
def test_invalid_keys_are_refused_with_their_path(bad, path):
    with pytest.raises(PlanError) as error:
        FaultPlan.from_data({"faults": [{"type": "goaway_after_streams", **bad}]})
    assert error.value.path == path


def test_h2_goaway_after_the_quota_covers_the_last_stream_which_finishes(sim, plan):
    plan(QUOTA)
    with H2Probe("127.0.0.1", sim.port) as probe:
        served = []
        for _ in range(3):
            stream = probe.request(body=BODY, key="quota-h2")
            assert probe.read_until(lambda p: p.ended(stream), timeout_s=10)
            served.append(stream)
            if len(served) < 3:
                assert not probe.of(GoAwayFrame)  # under the quota: nothing but the answer
        assert probe.read_until(lambda p: len(p.of(GoAwayFrame)) == 2 or p.closed is not None, timeout_s=10)
        first, final = probe.of(GoAwayFrame)[:2]
        assert first.last_stream_id == served[-1] and first.error_code == 0 and first.additional_data == b""
        assert final.last_stream_id == served[-1] and final.error_code == 0
        # the GOAWAY came at the third request's headers, before its answer, which still finished whole
        order = [(f.kind, f.frame.stream_id) for f in probe.frames]
        assert order.index(("GOAWAY", 0)) < order.index(("HEADERS", served[-1]))
        assert names(probe.events(served[-1]))[-1] == "message_stop" and len(probe.events(served[-1])) == 100
        assert probe.read_until(lambda p: p.closed is not None, timeout_s=5)
        assert probe.closed == "eof" and not probe.of(RstStreamFrame)
    notes = [r["faults"] for r in records(sim, "quota-h2")]
    assert [[n["type"] for n in note] for note in notes] == [[], [], ["goaway_after_streams"]]
    assert all(r["end"] == "complete" for r in records(sim, "quota-h2"))


def test_h2_a_stream_opened_after_the_goaway_is_refused_and_a_new_connection_serves(sim, plan):
    plan({**QUOTA, "streams": 1}, {"type": "slow", "tokens_per_second": 400})  # the first answer is still in flight
    with H2Probe("127.0.0.1", sim.port) as probe:
        first = probe.request(body=BODY, key="quota-late")
        assert probe.read_until(lambda p: bool(p.of(GoAwayFrame)))
        late = probe.request(body=BODY, key="quota-late")
        assert probe.read_until(lambda p: p.closed is not None, timeout_s=10)
        assert probe.of(GoAwayFrame)[0].last_stream_id == first
        assert probe.of(RstStreamFrame, late)[0].error_code == 7  # REFUSED_STREAM: never processed, safe to retry
        assert probe.ended(first) and not probe.of(HeadersFrame, late)
    with H2Probe("127.0.0.1", sim.port) as fresh:  # the quota is per connection
        stream = fresh.request(body=BODY, key="quota-fresh")
        assert fresh.read_until(lambda p: p.ended(stream), timeout_s=10)
        assert fresh.of(GoAwayFrame)[0].last_stream_id == stream  # its first request is its quota of 1


def read_response(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    """One chunked response from a keep-alive connection: its head, and the bytes after it."""
    while b"\r\n0\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, buffer[-200:]
        buffer += chunk
    response, _, rest = buffer.partition(b"\r\n0\r\n\r\n")
    return response.partition(b"\r\n\r\n")[0].lower(), rest


def test_http11_connection_close_on_the_nth_response_then_eof(sim, plan):
    plan(QUOTA)
    heads = []
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as sock:
        rest = b""
        for _ in range(3):
            sock.sendall(post("/v1/messages", BODY, key="quota-h1"))
            head, rest = read_response(sock, rest)
            heads.append(head)
        assert rest == b"" and sock.recv(65536) == b""  # then the server closed, cleanly
    assert [b"\r\nconnection: close" in head for head in heads] == [False, False, True]
    assert all(head.startswith(b"http/1.1 200") for head in heads)
    requests = records(sim, "quota-h1")
    assert [r["end"] for r in requests] == ["complete"] * 3 and requests[2]["faults"][0]["type"] == "goaway_after_streams"
