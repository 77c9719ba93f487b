"""Every fault on the wire, seen from the client side with raw sockets and a frame-logging h2
client: exactly N events, then exactly the frame or close the plan asked for."""

from __future__ import annotations

import errno
import json
import socket
import ssl
import time

import pytest

from harness.drive.simulator_process import SimulatorProcess
from tests.wire import GoAwayFrame, H2Probe, HeadersFrame, PingFrame, RstStreamFrame, dechunk, h1_exchange, post
from simulator import sse

BODY = {"model": "m", "max_tokens": 4000, "stream": True, "messages": [{"role": "user", "content": "hello\n@sc deltas=94"}]}
THINKING = {"model": "m", "max_tokens": 4000, "stream": True, "thinking": {"type": "adaptive"},
            "messages": [{"role": "user", "content": "think\n@sc words=30 thinking_words=60"}]}


@pytest.fixture(scope="module")
def sim():
    with SimulatorProcess(["--seed", "5"]) as process:
        yield process


@pytest.fixture
def plan(sim):
    def load(*faults, seed=1):
        sim.load_plan({"seed": seed, "faults": list(faults)})
    yield load
    sim.load_plan({"faults": []})


def names(events):
    return [e.name for e in events]


def records(sim, key):
    return [r for r in sim.journal(key) if r["kind"] == "request"]


# -- TCP-level endings -----------------------------------------------------------------------

def test_tcp_reset_after_exactly_50_events_is_econnreset_on_http11(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "events", "value": 50}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY, key="rst50"))
    assert result.ended == "reset"
    assert len(result.events()) == 50
    (request,) = records(sim, "rst50")
    assert request["end"] == "fault:tcp_reset" and request["events_out"] == 50
    assert request["faults"][0]["events_out"] == 50


def test_fin_mid_body_is_eof_without_the_last_chunk(sim, plan):
    plan({"type": "fin", "trigger": {"at": "events", "value": 20}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY, key="fin20"))
    assert result.ended == "eof"
    assert not result.body.endswith(b"0\r\n\r\n")
    assert len(result.events()) == 20


def test_bytes_trigger_cuts_at_exactly_n_body_bytes(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "bytes", "value": 1000}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY, key="b1000"))
    assert result.ended == "reset"
    assert len(dechunk(result.body)) == 1000


def test_tcp_reset_on_h2_after_n_events(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "events", "value": 30}})
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=BODY, key="h2rst")
        probe.read_until(lambda p: False, timeout_s=3)
        assert probe.closed == "reset"
        assert len(probe.events(stream)) == 30
        assert not probe.of(GoAwayFrame) and not probe.of(RstStreamFrame)


def test_reset_inside_the_thinking_block(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "events", "value": 5, "block": "thinking"}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", THINKING, key="think"))
    events = result.events()
    assert result.ended == "reset"
    deltas = [e.json()["delta"]["type"] for e in events if e.name == "content_block_delta"]
    assert deltas == ["thinking_delta"] * 5


@pytest.mark.parametrize("close_notify", [True, False])
def test_fin_over_tls_with_and_without_close_notify(sim, plan, close_notify):
    plan({"type": "fin", "close_notify": close_notify, "trigger": {"at": "events", "value": 10}})
    context = ssl.create_default_context(cafile=sim.ca_file)
    context.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    with context.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as sock:
        sock.sendall(post("/v1/messages", BODY, key=f"tlsfin{close_notify}"))
        data, outcome = b"", None
        while outcome is None:
            try:
                chunk = sock.recv(65536)
            except ssl.SSLEOFError:
                outcome = "eof_without_close_notify"
            else:
                if not chunk:
                    outcome = "close_notify"
                data += chunk
    assert outcome == ("close_notify" if close_notify else "eof_without_close_notify")
    assert len(sse.Decoder().feed(dechunk(data.partition(b"\r\n\r\n")[2]))) == 10


# -- HTTP/2 frames ---------------------------------------------------------------------------

def test_rst_stream_with_the_chosen_code_after_n_events_and_the_connection_lives_on(sim, plan):
    plan({"type": "rst_stream", "code": "INTERNAL_ERROR", "trigger": {"at": "events", "value": 40}, "select": {"attempts": [1]}})
    with H2Probe("127.0.0.1", sim.port) as probe:
        first = probe.request(body=BODY, key="rststream")
        assert probe.read_until(lambda p: p.ended(first))
        (reset,) = probe.of(RstStreamFrame, first)
        assert reset.error_code == 2 and len(probe.events(first)) == 40
        second = probe.request(body=BODY, key="rststream")  # attempt 2 of the same conversation
        assert probe.read_until(lambda p: p.ended(second))
        assert names(probe.events(second))[-1] == "message_stop" and len(probe.events(second)) == 100


def test_refused_stream_code_by_number(sim, plan):
    plan({"type": "rst_stream", "code": 7, "trigger": {"at": "headers"}})
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=BODY, key="refused")
        assert probe.read_until(lambda p: p.ended(stream))
        assert probe.of(RstStreamFrame, stream)[0].error_code == 7
        assert not probe.of(HeadersFrame, stream)


def test_abrupt_goaway_last_stream_zero_mid_stream(sim, plan):
    plan({"type": "goaway", "last_stream_id": 0, "graceful": False, "code": "NO_ERROR", "debug": "bye", "trigger": {"at": "events", "value": 25}})
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=BODY, key="goaway0")
        probe.read_until(lambda p: False, timeout_s=3)
        (goaway,) = probe.of(GoAwayFrame)
        assert goaway.last_stream_id == 0 and goaway.error_code == 0 and goaway.additional_data == b"bye"
        assert len(probe.events(stream)) == 25 and not probe.ended(stream)
        assert probe.closed == "eof"


def test_graceful_goaway_lets_the_stream_in_flight_finish_and_refuses_new_ones(sim, plan):
    plan({"type": "goaway", "last_stream_id": "current", "graceful": True, "trigger": {"at": "events", "value": 10}},
         {"type": "slow", "tokens_per_second": 400})
    with H2Probe("127.0.0.1", sim.port) as probe:
        first = probe.request(body=BODY, key="graceful")
        assert probe.read_until(lambda p: bool(p.of(GoAwayFrame)))
        late = probe.request(body=BODY, key="graceful-late")
        assert probe.read_until(lambda p: p.closed is not None, timeout_s=10) or probe.closed
        goaways = probe.of(GoAwayFrame)
        assert goaways[0].last_stream_id == first and goaways[0].error_code == 0
        assert len(probe.events(first)) == 100 and names(probe.events(first))[-1] == "message_stop"
        assert probe.of(RstStreamFrame, late)[0].error_code == 7  # REFUSED_STREAM
        assert len(goaways) == 2 and probe.closed == "eof"
        kinds = probe.kinds()
        assert kinds.index("GOAWAY") < len(kinds) - 1 - kinds[::-1].index("DATA")  # data after the first GOAWAY


def test_graceful_goaway_not_covering_the_stream_in_flight(sim, plan):
    plan({"type": "goaway", "last_stream_id": "previous", "graceful": True, "trigger": {"at": "events", "value": 10}})
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=BODY, key="previous")
        probe.read_until(lambda p: p.closed is not None, timeout_s=5)
        assert probe.of(GoAwayFrame)[0].last_stream_id == max(0, stream - 2)
        assert len(probe.events(stream)) == 10 and probe.closed == "eof"


# -- stalls and black holes ------------------------------------------------------------------

def test_stall_holds_the_stream_while_pings_are_answered(sim, plan):
    plan({"type": "stall", "seconds": 0.6, "trigger": {"at": "events", "value": 30}})
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=BODY, key="stall")
        assert probe.read_until(lambda p: len(p.events(stream)) >= 30)
        probe.ping(b"stalling")
        assert probe.read_until(lambda p: any("ACK" in f.flags for f in p.of(PingFrame)), timeout_s=0.55)
        assert len(probe.events(stream)) == 30  # the ACK came during the stall
        assert probe.read_until(lambda p: p.ended(stream), timeout_s=10)
        assert len(probe.events(stream)) == 100
    # Event-ordered, in the server's own clock: the one long silence is right after event 30 and
    # lasts at least the stall (sleeps never end early). The upper bound only says the stall ended:
    # idle, it overshoots by 1-3 ms; 2 s leaves room for a machine whose cores are all busy.
    (request,) = records(sim, "stall")
    writes = request["writes"]
    gaps = [(b[2] - a[2], a[0]) for a, b in zip(writes, writes[1:])]
    longest, after_events = max(gaps)
    assert after_events == 30 and 0.6 <= longest < 2.6, gaps


def test_stall_forever_at_zero_tokens(sim, plan):
    plan({"type": "stall", "seconds": "inf", "trigger": {"at": "headers"}})
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=BODY, key="hang0")
        assert not probe.read_until(lambda p: bool(p.of(HeadersFrame, stream)), timeout_s=1.0)
        probe.ping()
        assert probe.read_until(lambda p: any("ACK" in f.flags for f in p.of(PingFrame)), timeout_s=0.5)
    (request,) = records(sim, "hang0")
    assert request["end"] == "fault:stall" and request["events_out"] == 0  # it never ended otherwise


def test_blackhole_answers_no_ping_and_never_closes(sim, plan):
    plan({"type": "blackhole", "trigger": {"at": "events", "value": 12}})
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=BODY, key="bh")
        assert probe.read_until(lambda p: len(p.events(stream)) >= 12)
        probe.ping(b"anyone?!")
        assert not probe.read_until(lambda p: any("ACK" in f.flags for f in p.of(PingFrame)), timeout_s=1.0)
        assert probe.closed is None and len(probe.events(stream)) == 12


def test_idle_eviction_black_holes_the_idle_connection_and_spares_new_ones(sim, plan):
    plan({"type": "idle_eviction", "idle_s": 0.3})
    request = post("/v1/messages", BODY, key="nat")
    sock = socket.create_connection(("127.0.0.1", sim.port), timeout=3)
    try:
        sock.sendall(request)
        first = b""
        while not first.endswith(b"0\r\n\r\n"):
            first += sock.recv(65536)
        time.sleep(0.45)
        sock.sendall(request)
        sock.settimeout(1.0)
        with pytest.raises(socket.timeout):
            sock.recv(65536)
    finally:
        sock.close()
    fresh = h1_exchange("127.0.0.1", sim.port, request, until_complete=True)
    assert fresh.ended == "complete" and len(fresh.events()) == 100


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


# -- HTTP- and SSE-level ---------------------------------------------------------------------

def test_http_529_with_retry_headers(sim, plan):
    plan({"type": "http_error", "status": 529, "retry_after": 2, "retry_after_ms": 1500, "should_retry": True})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY) + b"", timeout_s=1)
    head = result.head.decode().lower()
    assert result.status == 529
    assert "retry-after: 2\r" in head and "retry-after-ms: 1500\r" in head and "x-should-retry: true" in head
    assert json.loads(result.body)["error"] == {"type": "overloaded_error", "message": "Overloaded"}


def test_sse_error_event_after_http_200(sim, plan):
    plan({"type": "sse_error", "trigger": {"at": "events", "value": 8}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY), until_complete=True)
    events = result.events()
    assert result.status == 200 and result.ended == "complete"
    assert len(events) == 9 and events[-1].name == "error"
    assert events[-1].json() == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def test_truncated_clean_ends_the_body_without_message_stop(sim, plan):
    plan({"type": "truncated_clean", "trigger": {"at": "events", "value": 99}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY), until_complete=True)
    assert result.ended == "complete" and len(result.events()) == 99
    assert "message_stop" not in names(result.events())


def test_garbled_event_has_broken_json(sim, plan):
    plan({"type": "malformed_sse", "mode": "garbled", "trigger": {"at": "events", "value": 5}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY), until_complete=True)
    events = result.events()
    assert len(events) == 100
    with pytest.raises(ValueError):
        events[5].json()
    assert events[4].json() and events[6].json()


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
        outcomes = {trial: [h1_exchange("127.0.0.1", port, post("/v1/messages", BODY, key=trial), until_complete=True).ended for _ in range(2)]
                    for trial, port in lanes.items()}
    finally:
        for port in lanes.values():
            sim.close_lane(port)
    assert outcomes == {"A": ["reset", "complete"], "B": ["reset", "complete"]}  # the first of each trial
    (request,) = records(sim, "A")
    assert request["decision"]["trial"] == "A" and request["decision"]["connection"] == 2
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", lanes["A"]), timeout=2)
