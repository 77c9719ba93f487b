"""Real toxiproxy v2.12 in front of the simulator: what clients see through each toxic, the typed
API layer's error handling, the server's lifecycle and its port-taken trap, and the timeline."""

from __future__ import annotations

import http.server
import itertools
import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import toxiproxy.api
import toxiproxy.exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.clients.launch import contract_env, run_client
from harness.drive.simulator_process import SimulatorProcess
from harness.network.toxiproxy.api import ToxiproxyClient, consumer_for
from harness.network.toxiproxy.binary import TOOLS_BINARY, find_binary
from harness.network.toxiproxy.errors import (
    InvalidToxic,
    NotFound,
    ProxyExists,
    ToxicValidationError,
    ToxiproxyAPIError,
    ToxiproxyConnectionError,
    ToxiproxyServerError,
    ToxiproxyTimeout,
    ToxiproxyUnavailable,
)
from harness.network.toxiproxy.server import ToxiproxyServer, live_pids
from harness.network.toxiproxy.timeline import (
    AddToxic,
    AfterFirstAnswer,
    At,
    Call,
    RemoveToxic,
    Step,
    TimelineError,
    ToxicTimeline,
    WhenIdle,
    down_window,
)
from harness.network.toxiproxy.toxics import (
    MAX_INT64,
    MAX_MS,
    MAX_RATE,
    MAX_US,
    TOXIC_KINDS,
    BandwidthToxic,
    LatencyToxic,
    LimitDataToxic,
    ResetPeerToxic,
    SlicerToxic,
    TimeoutToxic,
)
from harness.processes import owns_listener
from tests.support import ROOT, require
from tests.wire import dechunk, h1_exchange, post

HOST = "127.0.0.1"
SEED = 3
_names = itertools.count(1)


def stream_body(words: int = 300) -> dict:
    return {"model": "m", "max_tokens": 4000, "stream": True, "messages": [{"role": "user", "content": f"hello\n@sc words={words}"}]}


MODELS = b"GET /v1/models HTTP/1.1\r\nhost: localhost\r\nx-api-key: k\r\n\r\n"
MODELS_CLOSE = b"GET /v1/models HTTP/1.1\r\nhost: localhost\r\nx-api-key: k\r\nconnection: close\r\n\r\n"


def pid_running(pid: int) -> bool:
    """Alive and not a zombie (a process re-parented to a non-reaping init stays a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_running(pid):
            return True
        time.sleep(0.02)
    return not pid_running(pid)


def requests_of(sim: SimulatorProcess, key: str, count: int = 1, timeout_s: float = 5.0) -> list[dict]:
    """The key's request records once ``count`` of them are closed (connections may stay open)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = [r for r in sim.journal(key, wait_closed=False) if r["kind"] == "request"]
        if (len(records) >= count and not any(r.get("open") for r in records)) or time.monotonic() > deadline:
            return records


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toxi_binary() -> Path:
    try:
        return find_binary()
    except ToxiproxyUnavailable:
        require(TOOLS_BINARY, "toxiproxy-server >= 2.12 (make toxiproxy)")
        raise


@pytest.fixture(scope="module")
def toxi(toxi_binary):
    server = ToxiproxyServer(binary=toxi_binary)
    with server:
        yield server
    assert not pid_running(server.pid), "toxiproxy outlived its fixture"


@pytest.fixture(scope="module")
def sim():
    with SimulatorProcess(["--seed", str(SEED)]) as process:
        yield process


@pytest.fixture(scope="module")
def slow_sim():
    with SimulatorProcess(["--seed", str(SEED), "--tokens-per-second", "50"]) as process:
        yield process


@pytest.fixture
def make_proxy(toxi):
    made = []

    def make(upstream: SimulatorProcess):
        proxy = toxi.client.create_proxy(f"p{next(_names)}", f"{HOST}:{upstream.port}")
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        try:
            proxy.delete()
        except NotFound:
            pass


@pytest.fixture
def proxy(make_proxy, sim):
    return make_proxy(sim)


# -- exactly N bytes, then RST ------------------------------------------------------------------


def received(result) -> int:
    """Bytes on the wire (N is past the head here, so the blank line was there)."""
    assert result.body
    return len(result.head) + len(b"\r\n\r\n") + len(result.body)


def test_limit_data_with_linger_gives_exactly_n_bytes_then_rst(proxy, sim, api_key):
    assert proxy.port != sim.port and proxy.listen.startswith(f"{HOST}:")
    proxy.cut_after_bytes(1000)
    result = h1_exchange(HOST, proxy.port, post("/v1/messages", stream_body(), key=api_key))
    assert result.ended == "reset"
    assert result.status == 200 and received(result) == 1000
    (request,) = requests_of(sim, api_key)  # the simulator answered once, on one connection
    assert request["bytes_out"] > 1000


def test_limit_data_without_the_linger_trick_ends_with_fin(proxy, sim, api_key):
    proxy.add_toxic(LimitDataToxic(1000))
    result = h1_exchange(HOST, proxy.port, post("/v1/messages", stream_body(), key=api_key))
    assert result.ended == "eof" and received(result) == 1000


def test_python_sdk_sees_connection_reset_through_the_proxy(proxy, sim, api_key):
    proxy.cut_after_bytes(1500)
    plan = {"model": "claude-sonnet-4-6", "turns": [{"prompt": "Tell me about rivers.\n@sc words=400"}]}
    env = contract_env(proxy.base_url, api_key, plan, None, {"STREAMCHAOS_MAX_RETRIES": "0"})
    run = run_client([sys.executable, "-m", "harness.clients.programs.python_sdk_client"], env, deadline_s=30, cwd=str(ROOT))
    assert run.exit_code == 1, run.stdout + run.stderr
    assert run.error_line.startswith("ReadError") and "Connection reset by peer" in run.error_line, run.error_line
    (request,) = requests_of(sim, api_key)
    assert request["status"] == 200 and request["bytes_out"] > 1500


def test_python_sdk_retry_is_cut_too_and_the_journal_says_so(proxy, sim, api_key):
    """A toxic hits every future connection: the SDK's retry is cut as well; the journal, not an
    assumption, says how many attempts there were and on which connections."""
    proxy.cut_after_bytes(100)  # inside the response head: the SDK sees a connection error and retries
    plan = {"model": "claude-sonnet-4-6", "turns": [{"prompt": "hi\n@sc words=50"}]}
    env = contract_env(proxy.base_url, api_key, plan, None, {"STREAMCHAOS_MAX_RETRIES": "1"})
    run = run_client([sys.executable, "-m", "harness.clients.programs.python_sdk_client"], env, deadline_s=30, cwd=str(ROOT))
    assert run.exit_code == 1 and run.error_line.startswith("APIConnectionError"), run.error_line
    attempts = requests_of(sim, api_key, count=2)
    assert [r["retry_count"] for r in attempts] == [0, 1]
    assert len({r["conn"] for r in attempts}) == 2


# -- toxics on open connections -----------------------------------------------------------------


@pytest.mark.parametrize("armed", [True, False], ids=["linger-rst", "fin"])
def test_reset_peer_added_mid_stream_hits_the_open_connection(make_proxy, slow_sim, api_key, armed):
    proxy = make_proxy(slow_sim)
    if armed:
        proxy.arm_rst_on_close()
    steps = [Step(At(0.6), AddToxic(proxy, ResetPeerToxic()), "reset")]
    with ToxicTimeline(steps, journal=slow_sim, max_duration_s=10) as timeline:
        result = h1_exchange(HOST, proxy.port, post("/v1/messages", stream_body(words=120), key=api_key), timeout_s=10, until_complete=True)
        (fired,) = timeline.wait(5)
    assert result.ended == ("reset" if armed else "eof")
    (request,) = requests_of(slow_sim, api_key)
    assert request["t_headers"] < fired.done_at < request["t_end"]  # open when the toxic arrived
    assert request["end"] != "complete" and request["events_out"] < request["events_total"]
    assert 3 <= len(result.events()) < request["events_total"]


def test_down_refuses_new_connections_and_up_restores_them(proxy):
    keep = socket.create_connection((HOST, proxy.port), timeout=2)
    keep.sendall(MODELS)
    assert keep.recv(65536).startswith(b"HTTP/1.1 200")
    port = proxy.port
    proxy.disable()
    try:
        keep.settimeout(2)
        try:
            assert keep.recv(65536) == b""  # the open connection was closed
        except ConnectionResetError:
            pass
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((HOST, port), timeout=2).close()
    finally:
        keep.close()
        proxy.enable()
    assert proxy.port == port
    assert h1_exchange(HOST, port, MODELS_CLOSE).status == 200


def test_down_window_after_the_first_answer(proxy, sim, api_key):
    steps = down_window(proxy, AfterFirstAnswer(api_key), 0.5)
    with ToxicTimeline(steps, journal=sim, max_duration_s=10) as timeline:
        first = h1_exchange(HOST, proxy.port, post("/v1/messages", stream_body(20), key=api_key), until_complete=True)
        assert first.ended == "complete"
        refused_at = accepted_at = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and accepted_at is None:
            try:
                socket.create_connection((HOST, proxy.port), timeout=1).close()
                if refused_at is not None:
                    accepted_at = time.monotonic()
            except ConnectionRefusedError:
                refused_at = refused_at or time.monotonic()
            time.sleep(0.005)
        down, up = timeline.wait(5)
    (request,) = requests_of(sim, api_key)
    assert down.trigger["request_id"] == request["request_id"] and down.due_at == request["t_end"]
    assert refused_at is not None and accepted_at is not None
    # Event order: refused only once the proxy was down, accepted only once it was up again.
    assert down.fired_at <= refused_at <= up.done_at and accepted_at >= up.fired_at
    # The window never ends early; its thread wakes late only by scheduling delay (idle: 1-5 ms;
    # 1 s covers a machine whose cores are all busy with other work).
    assert 0.5 <= up.fired_at - down.done_at < 0.5 + 1.0


def test_bandwidth_zero_stalls_losslessly_and_resumes_when_removed(proxy, sim, api_key):
    direct = h1_exchange(HOST, sim.port, post("/v1/messages", stream_body(), key=api_key), until_complete=True)
    assert direct.ended == "complete"
    proxy.add_toxic(BandwidthToxic(0))
    with socket.create_connection((HOST, proxy.port), timeout=3) as sock:
        sock.sendall(post("/v1/messages", stream_body(), key=api_key))
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            sock.recv(65536)  # nothing, not even the status line
        _, held = requests_of(sim, api_key, count=2)
        assert held["end"] == "complete"  # the simulator wrote it all: toxiproxy holds it
        proxy.remove_toxic("bandwidth_downstream")
        data = b""
        sock.settimeout(3)
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the answer ended"
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    first, second = requests_of(sim, api_key, count=2)
    ids = [("msg_" + r["request_id"][4:]).encode() for r in (first, second)]
    # byte-identical apart from the message id the simulator numbers per request
    assert dechunk(body).replace(ids[1], ids[0]) == dechunk(direct.body)


def test_latency_adds_its_delay(proxy):
    def timed() -> float:
        result = h1_exchange(HOST, proxy.port, MODELS_CLOSE)
        assert result.status == 200 and result.ended == "eof"
        return result.elapsed_s

    base = min(timed() for _ in range(3))
    proxy.add_toxic(LatencyToxic(200))
    one_way = min(timed() for _ in range(2))
    proxy.add_toxic(LatencyToxic(100, stream="upstream"))
    both = min(timed() for _ in range(2))
    # toxiproxy holds each chunk until `latency` ms after it *read* it, so the delay is a floor on
    # the round trip rather than an amount added to whatever the simulator took
    # (upper bounds: best of 2 tries, with 0.5 s of slack for busy cores)
    assert 0.2 <= one_way < base + 0.2 + 0.5, (base, one_way)
    assert 0.3 <= both < base + 0.3 + 0.5, (base, both)


def test_timeout_toxic_black_holes_new_connections_and_closes_with_fin_when_removed(proxy):
    proxy.add_toxic(TimeoutToxic(0))
    black_holed = h1_exchange(HOST, proxy.port, MODELS, timeout_s=0.4)  # a new connection
    assert black_holed.ended == "timeout" and not black_holed.head
    with socket.create_connection((HOST, proxy.port), timeout=2) as sock:
        sock.sendall(MODELS)
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(65536)
        proxy.remove_toxic("timeout_downstream")
        sock.settimeout(2)
        assert sock.recv(65536) == b""  # FIN, no answer: not what a NAT eviction looks like


# -- the timeline ------------------------------------------------------------------------------


def test_when_idle_fires_after_the_connection_was_idle(proxy, sim, api_key):
    seen = []
    steps = [Step(WhenIdle(api_key, 0.3), Call(lambda: seen.append(time.monotonic()), "note"), "idle")]
    with socket.create_connection((HOST, proxy.port), timeout=2) as sock:
        with ToxicTimeline(steps, journal=sim, max_duration_s=5) as timeline:
            sock.sendall(post("/v1/messages", stream_body(10), key=api_key))
            data = b""
            while not data.endswith(b"\r\n0\r\n\r\n"):
                data += sock.recv(65536)
            (fired,) = timeline.wait(5)
    (request,) = requests_of(sim, api_key)
    assert fired.trigger["conn"] == request["conn"]
    assert abs(fired.trigger["idle_since"] - request["t_end"]) < 0.05
    # Never before 0.3 s of idle; late only by the polling thread's scheduling (idle: < 20 ms;
    # 1 s leaves room for busy cores).
    assert 0.3 <= fired.fired_at - request["t_end"] < 0.3 + 1.0
    assert seen and fired.lateness_s < 1.0


def test_timeline_lifetime_is_bounded_and_failures_are_raised(proxy):
    timeline = ToxicTimeline([Step(At(100), Call(lambda: None), "never")], max_duration_s=0.3).start()
    started = time.monotonic()
    assert timeline.wait(5) == []
    assert time.monotonic() - started < 3.0  # bounded by its 0.3 s lifetime, not by At(100)
    assert timeline.pending == ["never"] and timeline.ended_because == "lifetime"

    steps = [Step(At(0), RemoveToxic(proxy, "no_such_toxic"), "bad"), Step(At(0.05), Call(lambda: None), "after")]
    with pytest.raises(TimelineError, match="NotFound"):
        ToxicTimeline(steps, max_duration_s=2).start().wait(5)
    with pytest.raises(ValueError, match="journal"):
        ToxicTimeline([Step(WhenIdle("k", 1), Call(lambda: None))])


def test_scenario_toxic_steps_run_as_a_scaled_timeline(toxi, sim, api_key):
    """The runner's entry points: ``[[toxics]]`` steps of a scenario file, time-scaled by 0.1."""
    from harness.network.toxiproxy.timeline import start_timeline
    from harness.scenario import ToxicStep

    proxy = toxi.create_proxy(f"scenario-{api_key}", upstream_port=sim.port)
    # upstream: a downstream latency would still hold the answer when the journal says complete,
    # and the down step would cut it (AfterFirstAnswer's docstring)
    steps = (
        ToxicStep("add", at_s=0.0, toxic={"type": "latency", "latency": 1500, "name": "slow", "stream": "upstream"}),
        ToxicStep("down", on="first_answer_complete"),
        ToxicStep("up", at_s=15.0),
    )
    try:
        timeline = start_timeline(toxi, proxy, steps, 0.1, sim, api_key)
        time.sleep(0.05)
        first = h1_exchange(HOST, proxy.listen_port, post("/v1/messages", stream_body(20), key=api_key), until_complete=True)
        assert first.ended == "complete" and first.elapsed_s >= 0.15  # 1500 ms x 0.1
        deadline = time.monotonic() + 2
        while "toxics[1]:down" in timeline.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((HOST, proxy.listen_port), timeout=1).close()
        fired = timeline.wait(5)
        assert [f.label for f in fired] == ["toxics[0]:add", "toxics[1]:down", "toxics[2]:up"]
        assert 1.5 <= fired[2].fired_at - timeline.started < 1.5 + 0.2
        assert proxy.toxic("slow") == LatencyToxic(150, name="slow", stream="upstream")
    finally:
        toxi.delete_proxy(proxy)
    toxi.delete_proxy(proxy)  # already gone: fine


def test_toxic_from_data_reads_scenario_tables():
    from harness.network.toxiproxy import available, toxic_from_data
    from harness.network.toxiproxy.toxics import scaled_toxic

    assert toxic_from_data({"type": "latency", "latency": 100, "stream": "upstream"}) == LatencyToxic(100, stream="upstream")
    assert toxic_from_data({"type": "slicer", "attributes": {"average_size": 8, "delay": 10}}) == SlicerToxic(8, delay=10)
    with pytest.raises(ValueError, match=r"latency\.latncy: unknown attribute"):
        toxic_from_data({"type": "latency", "latncy": 1})
    with pytest.raises(ValueError, match=r"^type: must be one of"):
        toxic_from_data({"type": "jitter"})
    with pytest.raises(ValueError, match=r"limit_data\.bytes"):
        toxic_from_data({"type": "limit_data", "bytes": -1})
    assert scaled_toxic(LatencyToxic(1000, jitter=1), 0.1) == LatencyToxic(100, jitter=1)
    assert scaled_toxic(BandwidthToxic(10), 0.1) == BandwidthToxic(100)
    assert scaled_toxic(BandwidthToxic(0), 0.1) == BandwidthToxic(0)
    assert scaled_toxic(LimitDataToxic(1000), 0.1) == LimitDataToxic(1000)
    assert available() == (True, None)


# -- the typed layer: errors, timeouts, isolation -----------------------------------------------


class _Answers(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(1.5)
        status = {"/version": 503, "/proxies": 500, "/slow": 200, "/teapot": 418}.get(self.path, 404)
        body = json.dumps({"error": f"canned {status}", "status": status}).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def canned_api():
    server = http.server.ThreadingHTTPServer((HOST, 0), _Answers)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_5xx_and_timeouts_raise(canned_api):
    client = ToxiproxyClient(HOST, canned_api, timeout_s=0.3)
    with pytest.raises(ToxiproxyServerError, match="503") as info:
        client.version()
    assert info.value.status == 503 and "canned 503" in str(info.value)
    with pytest.raises(ToxiproxyServerError, match="500"):
        client.proxies()
    with pytest.raises(ToxiproxyAPIError, match="418"):
        client.request("GET", "/teapot")
    started = time.monotonic()
    with pytest.raises(ToxiproxyTimeout):
        client.request("GET", "/slow")
    assert time.monotonic() - started < 1.0
    closed = socket.socket()
    closed.bind((HOST, 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ToxiproxyConnectionError):
        ToxiproxyClient(HOST, port, timeout_s=0.5).version()


def test_api_errors_from_the_real_server(toxi, proxy):
    client = toxi.client
    with pytest.raises(NotFound) as missing:
        client.proxy("no-such-proxy")
    assert isinstance(missing.value, toxiproxy.exceptions.NotFound)  # the package's types still catch them
    with pytest.raises(ProxyExists):
        client.create_proxy(proxy.name, proxy.upstream)
    with pytest.raises(InvalidToxic, match="invalid toxic type"):
        client.request("POST", f"/proxies/{proxy.name}/toxics", {"type": "nope"})
    proxy.add_toxic(LatencyToxic(5))
    with pytest.raises(ProxyExists, match="toxic already exists"):
        proxy.add_toxic(LatencyToxic(6))
    with pytest.raises(NotFound):
        proxy.remove_toxic("nope")
    proxy.disable()
    with socket.socket() as squatter:  # the port is taken while the proxy is down
        squatter.bind((HOST, proxy.port))
        squatter.listen(1)
        with pytest.raises(ToxiproxyServerError, match="address already in use") as taken:
            proxy.enable()
        assert taken.value.status == 500
    proxy.enable()
    with pytest.raises(ValueError, match="Mozilla"):
        ToxiproxyClient(HOST, toxi.port, user_agent="Mozilla/5.0")
    browser = consumer_for(HOST, toxi.port, 2.0, "Mozilla/5.0 (X11)")
    with pytest.raises(ToxiproxyAPIError) as forbidden:
        browser.call("GET", "/version")
    assert forbidden.value.status == 403


def test_update_toxic_patches_attributes_and_toxicity(proxy):
    proxy.add_toxic(LatencyToxic(5, jitter=1, name="lat"))
    updated = proxy.update_toxic("lat", latency=50, toxicity=0.5)
    assert updated == LatencyToxic(50, jitter=1, name="lat", toxicity=0.5)
    assert proxy.toxic("lat") == updated
    assert proxy.update_toxic(LatencyToxic(7, name="lat")) == LatencyToxic(7, name="lat")
    with pytest.raises(ToxicValidationError, match=r"latency\.latency"):
        proxy.update_toxic("lat", latency=-1)
    with pytest.raises(ValueError, match="remove it"):
        proxy.update_toxic(LatencyToxic(7, name="lat", stream="upstream"))


def test_two_servers_in_one_process_share_nothing(toxi, toxi_binary, sim):
    with ToxiproxyServer(binary=toxi_binary) as other:
        mine = other.client.create_proxy("only-here", f"{HOST}:{sim.port}")
        assert "only-here" in other.client.proxies()
        assert "only-here" not in toxi.client.proxies()
        assert toxi.client.version() == other.client.version() == "2.12.0"
        assert mine.port != other.port != toxi.port
    assert (toxiproxy.api.APIConsumer.host, toxiproxy.api.APIConsumer.port) == ("127.0.0.1", 8474)  # global untouched
    assert toxi.client.version() == "2.12.0"


# -- lifecycle ---------------------------------------------------------------------------------


def test_port_taken_by_another_toxiproxy_is_detected_and_retried(toxi, toxi_binary):
    server = ToxiproxyServer(binary=toxi_binary, port=toxi.port)
    with server:
        first, *_, last = server.history
        # Two detections of the same trap, whichever comes first: toxiproxy logged the bind error
        # (it keeps running with no API), or /version answered from the other server's socket.
        assert first.port == toxi.port and first.outcome == "api port taken"
        assert "another process" in first.detail or "address already in use" in first.detail, first.detail
        assert not pid_running(first.pid)
        assert last.outcome == "ready" and server.port != toxi.port and owns_listener(server.pid, server.port)
        assert server.client.version() == "2.12.0"
    assert toxi.client.version() == "2.12.0" and toxi.alive()


def test_port_taken_by_a_silent_listener_is_detected_from_the_log(toxi_binary):
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        squatter.listen(1)
        server = ToxiproxyServer(binary=toxi_binary, port=squatter.getsockname()[1])
        with server:
            first = server.history[0]
            assert first.outcome == "api port taken" and "address already in use" in first.detail
            assert not pid_running(first.pid) and server.alive()
    assert not pid_running(server.pid)


def test_stop_leaves_no_process(toxi_binary):
    server = ToxiproxyServer(binary=toxi_binary).start()
    pid = server.pid
    assert pid_running(pid) and pid in live_pids()
    assert server.stop() == 0
    assert not pid_running(pid) and pid not in live_pids()
    assert server.stop() == 0  # idempotent
    with pytest.raises(RuntimeError):
        with ToxiproxyServer(binary=toxi_binary) as failing:
            pid = failing.pid
            raise RuntimeError("the harness failed")
    assert not pid_running(pid)


HARNESS = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from harness.network.toxiproxy import ToxiproxyServer
    server = ToxiproxyServer().start()
    print(server.pid, flush=True)
    mode = sys.argv[1]
    if mode == "raise":
        raise RuntimeError("the harness failed")
    if mode == "exit":
        sys.exit(0)
    time.sleep(30)
""")


@pytest.mark.parametrize("mode", ["exit", "raise", "sigint", "sigterm", "sigkill"])
def test_no_toxiproxy_outlives_the_harness(toxi_binary, mode):
    """The harness exits normally, fails, is interrupted or killed: its toxiproxy is gone."""
    process = subprocess.Popen(
        [sys.executable, "-c", HARNESS.format(root=str(ROOT)), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, process.stderr.read()
        pid = int(process.stdout.readline())
        if mode.startswith("sig"):
            assert pid_running(pid)
            os.kill(process.pid, getattr(signal, mode.upper()))
        process.wait(30)  # idle it exits in well under a second; a full run under `yes` load once took > 10 s
        assert wait_gone(pid, 5), f"toxiproxy {pid} outlived a harness that ended by {mode}"
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)
        process.stdout.close()
        process.stderr.close()
    if mode == "raise":
        assert process.returncode == 1
    elif mode.startswith("sig"):
        assert process.returncode in (-getattr(signal, mode.upper()), 1, 130)


def test_missing_binary_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToxiproxyUnavailable) as info:
        find_binary(tools_binary=tmp_path / "absent")
    assert "make toxiproxy" in str(info.value) and "Go >= 1.23" in str(info.value)
    old = tmp_path / "toxiproxy-server"
    old.write_text("#!/bin/sh\necho 'toxiproxy-server version 2.11.0'\n")
    old.chmod(0o755)
    with pytest.raises(ToxiproxyUnavailable, match=r"2\.11\.0 < 2\.12\.0"):
        find_binary(tools_binary=tmp_path / "absent")
    old.write_text("#!/bin/sh\necho 'toxiproxy-server version 2.12.1'\n")
    assert find_binary(tools_binary=tmp_path / "absent") == old


# -- toxic validation --------------------------------------------------------------------------

# attribute -> (low, high), independent of the module's own checks
BOUNDS = {
    "latency": {"latency": (0, MAX_MS), "jitter": (0, MAX_MS)},
    "bandwidth": {"rate": (0, MAX_RATE)},
    "slow_close": {"delay": (0, MAX_MS)},
    "timeout": {"timeout": (0, MAX_MS)},
    "reset_peer": {"timeout": (0, MAX_MS)},
    "slicer": {"average_size": (1, MAX_INT64), "size_variation": (0, MAX_INT64), "delay": (0, MAX_US)},
    "limit_data": {"bytes": (0, MAX_INT64)},
}
VALID = {
    "latency": {"latency": 1},
    "bandwidth": {"rate": 1},
    "slow_close": {"delay": 1},
    "timeout": {"timeout": 1},
    "reset_peer": {"timeout": 1},
    "slicer": {"average_size": 10, "size_variation": 1, "delay": 1},
    "limit_data": {"bytes": 1},
}
ANY_VALUE = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, MAX_MS, MAX_MS + 1, MAX_INT64, MAX_INT64 + 1, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)


def attribute_ok(kind: str, attribute: str, value, others: dict) -> bool:
    if type(value) is not int:
        return False
    low, high = BOUNDS[kind][attribute]
    if kind == "slicer":
        values = {**others, attribute: value}
        if attribute in ("average_size", "size_variation") and values["size_variation"] >= values["average_size"]:
            return False
    return low <= value <= high


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(BOUNDS)), data=st.data(), value=ANY_VALUE)
def test_toxic_attributes_are_validated(kind, data, value):
    attribute = data.draw(st.sampled_from(sorted(BOUNDS[kind])))
    cls = TOXIC_KINDS[kind]
    kwargs = {**VALID[kind], attribute: value}
    if attribute_ok(kind, attribute, value, VALID[kind]):
        toxic = cls(**kwargs)
        assert toxic.to_api()["attributes"][attribute] == value and toxic.to_api()["type"] == kind
    else:
        with pytest.raises(ToxicValidationError) as info:
            cls(**kwargs)
        assert info.value.attribute.startswith(f"{kind}.") and info.value.attribute.split(".")[1] in BOUNDS[kind]
        assert info.value.attribute.split(".")[1] in str(info.value)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(sorted(BOUNDS)),
    toxicity=st.one_of(st.floats(allow_nan=True), st.integers(-3, 3), st.booleans(), st.text(max_size=3)),
    stream=st.one_of(st.sampled_from(["upstream", "downstream", "Downstream", "both", ""]), st.text(max_size=4)),
    name=st.one_of(st.none(), st.text(max_size=8), st.from_regex(r"\A[A-Za-z0-9_.\-]{1,20}\Z")),
)
def test_common_fields_are_validated(kind, toxicity, stream, name):
    cls = TOXIC_KINDS[kind]
    toxicity_ok = type(toxicity) in (int, float) and math.isfinite(toxicity) and 0 <= toxicity <= 1
    stream_ok = stream in ("upstream", "downstream")
    name_ok = name is None or bool(re.fullmatch(r"[A-Za-z0-9_.\-]{1,100}", name))
    kwargs = dict(VALID[kind], toxicity=toxicity, stream=stream, name=name)
    if toxicity_ok and stream_ok and name_ok:
        toxic = cls(**kwargs)
        assert toxic.toxic_name == (name or f"{kind}_{stream}")
    else:
        with pytest.raises(ToxicValidationError) as info:
            cls(**kwargs)
        field = info.value.attribute.split(".")[1]
        assert field in ("toxicity", "stream", "name") and field in str(info.value)


def valid_toxics():
    def build(kind):
        attrs = {}
        for attribute, (low, high) in BOUNDS[kind].items():
            attrs[attribute] = st.integers(min_value=low, max_value=min(high, 10**6))
        strategy = st.fixed_dictionaries(attrs)
        if kind == "slicer":
            strategy = strategy.filter(lambda a: a["size_variation"] < a["average_size"])
        return st.builds(
            lambda a, s, t: TOXIC_KINDS[kind](**a, stream=s, toxicity=t),
            strategy,
            st.sampled_from(["upstream", "downstream"]),
            st.sampled_from([0, 0.25, 0.5, 1]),
        )

    return st.sampled_from(sorted(BOUNDS)).flatmap(build)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(toxic=valid_toxics())
def test_valid_toxics_round_trip_through_the_server(toxi, proxy, toxic):
    try:
        assert proxy.add_toxic(toxic) == toxic
        assert proxy.toxics() == [toxic]
    finally:
        proxy.remove_all_toxics()
