"""Nothing one request does stops, freezes or exhausts the simulator (issue 11, simulator half).

Each trigger the issue reproduced is sent on the wire to a real simulator process, and the same
process must answer a normal request afterwards. Containment itself (a bug of ours inside one
request or connection) is shown by injecting a failure into an in-process simulator.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.drive.simulator_process import SimulatorProcess
from simulator.api.limits import MAX_JSON_DEPTH, MAX_TOKENS, MAX_WORDS
from simulator.api.request import directive_problem
from tests.keepalive_client import KeepAlive, assert_api_error, messages_body
from tests.wire import H2Probe

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sim():
    with SimulatorProcess(["--seed", "11"]) as process:
        yield process


def h2_statuses(probe: H2Probe) -> dict[int, int]:
    """The :status of each stream, decoding every HEADERS frame in order (HPACK is stateful)."""
    import hpack
    from hyperframe.frame import HeadersFrame

    decoder, out = hpack.Decoder(), {}
    for logged in probe.frames:
        if isinstance(logged.frame, HeadersFrame):
            headers = dict(decoder.decode(logged.frame.data))
            out[logged.frame.stream_id] = int(headers[":status"])
    return out


def still_serving(sim: SimulatorProcess) -> None:
    """The process is alive and a normal request on a new connection gets its answer."""
    assert sim.process.poll() is None, "the simulator exited"
    with KeepAlive("127.0.0.1", sim.port) as conn:
        response = conn.request("POST", "/v1/messages", messages_body("still there?", stream=True))
        assert response.status == 200 and response.events()[-1].name == "message_stop"


# -- HEAD -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, status", [("/", 404), ("/v1/models", 200), ("/v1/models/claude-opus-4-7", 200), ("/v1/messages", 405), ("/nope", 404)]
)
def test_head_is_answered_without_a_body_over_http11(sim, path, status):
    with KeepAlive("127.0.0.1", sim.port) as conn:
        head = conn.request("HEAD", path)
        assert head.status == status and int(head.headers["content-length"]) > 0
        # No body followed the head: the next answer on the same connection starts right away.
        follow = conn.request("GET", "/v1/models")
        assert follow.status == 200 and follow.json()["data"]
    still_serving(sim)


def test_head_is_answered_without_a_body_over_h2(sim):
    with H2Probe("127.0.0.1", sim.port) as probe:
        head = probe.request("/", method="HEAD", body=b"")
        assert probe.read_until(lambda p: p.ended(head), 5)
        models = probe.request("/v1/models", method="GET", body=b"")
        assert probe.read_until(lambda p: p.ended(models), 5)
        assert probe.data(head) == b"" and h2_statuses(probe)[head] == 404
        assert h2_statuses(probe)[models] == 200 and json.loads(probe.data(models))["data"]
    still_serving(sim)


# -- @sc integers ---------------------------------------------------------------------------------
UNICODE_DIGITS = ["²", "¹⁰", "٣", "५", "５", "①", "𝟙", "߁", "²0"]  # noqa: RUF001 - No and Nd digits, none of them 0-9


@pytest.mark.parametrize("key", ["words", "ping_every", "deltas", "thinking_words", "tool_turns"])
@pytest.mark.parametrize("digit", UNICODE_DIGITS)
def test_non_ascii_digits_in_a_directive_are_a_400_naming_it(sim, key, digit):
    with KeepAlive("127.0.0.1", sim.port) as conn:
        response = conn.request("POST", "/v1/messages", messages_body(f"hi\n@sc {key}={digit}", stream=True))
        assert_api_error(response, 400, "invalid_request_error", f"@sc directive: {key}", "digits 0-9")
        assert directive_problem(f"hi\n@sc {key}={digit}") is not None  # the check scenarios validate uses
    still_serving(sim)


def test_scenario_validate_refuses_a_non_ascii_digit(tmp_path):
    path = tmp_path / "superscript.toml"
    path.write_text(
        'version = 1\nname = "superscript"\ntitle = "t"\nshape = "s"\nexpect = "e"\n[conversation]\nprompt = "hi\\n@sc ping_every=\u00b2"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "scenarios", "validate", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert f"{path}: conversation.prompt: @sc directive: ping_every must be a whole number" in done.stdout + done.stderr


@pytest.mark.parametrize(
    "directive, fragment",
    [
        ("words=1000000000000", f"words must be at most {MAX_WORDS}"),
        (f"words={MAX_WORDS + 1}", f"words must be at most {MAX_WORDS}"),
        ("deltas=99999999999999999999999999", "deltas must be at most"),
        ("thinking_words=1000000000000", "thinking_words must be at most"),
        ("tool_turns=1000000", "tool_turns must be at most"),
        ("ping_every=1" + "0" * 4000, "ping_every must be at most"),
    ],
)
def test_huge_directive_values_are_refused(sim, directive, fragment):
    with KeepAlive("127.0.0.1", sim.port) as conn:
        assert_api_error(conn.request("POST", "/v1/messages", messages_body(f"hi\n@sc {directive}")), 400, "invalid_request_error", fragment)
    still_serving(sim)


def test_huge_max_tokens_is_refused(sim):
    with KeepAlive("127.0.0.1", sim.port) as conn:
        body = messages_body("hi\n@sc words=1000000", max_tokens=10**12)
        assert_api_error(
            conn.request("POST", "/v1/messages", body),
            400,
            "invalid_request_error",
            f"max_tokens: Input should be less than or equal to {MAX_TOKENS}",
        )
    still_serving(sim)


# -- deep JSON ------------------------------------------------------------------------------------
def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 3000, 100_000])
def test_deeply_nested_bodies_are_a_400(sim, path, depth):
    body = ('{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"metadata":' + deep(depth) + "}").encode()
    with KeepAlive("127.0.0.1", sim.port) as conn:
        assert_api_error(conn.request("POST", path, body), 400, "invalid_request_error", f"nested more than {MAX_JSON_DEPTH} levels")
    still_serving(sim)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 3000])
def test_deeply_nested_tool_input_directive_is_a_400(sim, depth):
    body = messages_body(f"hi\n@sc tool=X input={deep(depth)}")
    with KeepAlive("127.0.0.1", sim.port) as conn:
        assert_api_error(conn.request("POST", "/v1/messages", body), 400, "invalid_request_error", "input= is nested more than")
    still_serving(sim)


def test_nesting_up_to_the_limit_is_served(sim):
    tool_input = json.dumps({"a": json.loads(deep(MAX_JSON_DEPTH - 2))})  # the object plus 62 arrays: the limit of 64 counts the body too
    with KeepAlive("127.0.0.1", sim.port) as conn:
        response = conn.request("POST", "/v1/messages", messages_body(f"go\n@sc tool=X input={tool_input}"))
        assert response.status == 200, response.body[:300]
        (use,) = [block for block in response.json()["content"] if block["type"] == "tool_use"]
        assert use["input"] == json.loads(tool_input)


# -- a long answer does not stall the others ------------------------------------------------------
def test_a_million_word_answer_does_not_stall_other_streams(sim):
    """While one client streams ``@sc words=1000000`` (about 64 MB of SSE), another's requests on
    another connection keep being answered promptly: the long answer is generated and encoded a
    slice at a time. (Before: every other stream waited about 3 s.)"""
    result: dict = {}

    def long_stream() -> None:
        with KeepAlive("127.0.0.1", sim.port, timeout_s=120) as conn:
            started = time.monotonic()
            response = conn.request(
                "POST", "/v1/messages", messages_body("long\n@sc words=1000000", stream=True, max_tokens=2_000_000), key="sk-long"
            )
            result.update(status=response.status, size=len(response.body), tail=response.body[-200:], seconds=time.monotonic() - started)

    thread = threading.Thread(target=long_stream)
    latencies = []
    with KeepAlive("127.0.0.1", sim.port) as conn:
        conn.request("POST", "/v1/messages", messages_body("warm", stream=True))
        thread.start()
        deadline = time.monotonic() + 120
        while thread.is_alive() and time.monotonic() < deadline:
            started = time.monotonic()
            response = conn.request("POST", "/v1/messages", messages_body(f"short {len(latencies)}", stream=True, max_tokens=50))
            latencies.append(time.monotonic() - started)
            assert response.status == 200 and response.events()[-1].name == "message_stop"
            time.sleep(0.01)  # a steady trickle, not a competing flood
    thread.join(5)
    assert (
        result["status"] == 200 and result["size"] > 50_000_000 and result["tail"].endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    )
    latencies.sort()
    p50, worst = latencies[len(latencies) // 2], latencies[-1]
    print(
        f"\nlong answer: {result['size']} bytes in {result['seconds']:.2f} s; "
        f"{len(latencies)} short streams meanwhile: p50 {p50 * 1000:.1f} ms, max {worst * 1000:.1f} ms"
    )
    assert len(latencies) >= 5
    assert worst < 0.75, f"a short stream waited {worst:.2f} s behind the long answer"
    (record,) = [r for r in sim.journal("sk-long") if r["kind"] == "request"]
    assert record["end"] == "complete" and record["events_out"] == record["events_total"]
    still_serving(sim)


# -- containment: a bug of ours inside one request or connection ----------------------------------
class InProcess:
    """A real Simulator (data plane, control plane, journal) run by trio in a thread."""

    def __init__(self) -> None:
        from simulator.service import Simulator

        self.simulator = Simulator()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self.endpoints = await nursery.start(self.simulator.run)
            self._ready.set()

    def __enter__(self) -> InProcess:
        self._thread.start()
        assert self._ready.wait(30)
        self.port = self.endpoints.port
        return self

    def journal(self, key: str | None = None) -> list[dict]:
        """The journal, read in the simulator's own thread (it is not thread-safe)."""
        return trio.from_thread.run_sync(self.simulator.state.journal.query, key, trio_token=self.token)

    def __exit__(self, *exc: object) -> None:
        trio.from_thread.run(self.simulator.stop, 1.0, trio_token=self.token)
        self._thread.join(10)


def test_a_failing_request_gets_a_500_and_the_server_goes_on(monkeypatch):
    with InProcess() as live:
        api = live.simulator.state.api
        real = api.handle_steps

        def handle_steps(info, body, request_id):
            if b"explode" in body:
                raise RuntimeError("injected bug")
            return real(info, body, request_id)

        monkeypatch.setattr(api, "handle_steps", handle_steps)
        with KeepAlive("127.0.0.1", live.port) as conn:
            assert_api_error(conn.request("POST", "/v1/messages", messages_body("explode"), key="sk-boom"), 500, "api_error", "Internal server error")
            assert conn.request("POST", "/v1/messages", messages_body("fine"), key="sk-boom").status == 200  # same connection
        with H2Probe("127.0.0.1", live.port) as probe:
            bad = probe.request(body=messages_body("explode"), key="sk-boom")
            good = probe.request(body=messages_body("fine", stream=True), key="sk-boom")
            assert probe.read_until(lambda p: p.ended(bad) and p.ended(good), 15)
            assert h2_statuses(probe)[bad] == 500 and json.loads(probe.data(bad))["error"]["type"] == "api_error"
            assert h2_statuses(probe)[good] == 200 and probe.events(good)[-1].name == "message_stop"
        deadline = time.monotonic() + 5
        while True:  # the client can see the 500 before the server closes its record
            records = [r for r in live.journal("sk-boom") if r["kind"] == "request"]
            failed = [r for r in records if r.get("end") == "server_error"]
            if len(failed) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert len(failed) == 2 and all(r["status"] == 500 for r in failed), records
        digests = {r["server_error"]["digest"] for r in failed}
        assert len(digests) == 1 and all(r["server_error"]["type"] == "RuntimeError" for r in failed)  # the same bug, the same digest
        assert live.simulator.state.errors.count == 2


def test_a_failing_connection_is_closed_and_the_server_goes_on(monkeypatch):
    from simulator.transport import h1

    with InProcess() as live:

        async def broken(*args, **kwargs):
            raise KeyError("injected connection bug")

        monkeypatch.setattr(h1, "run_exchange", broken)
        with KeepAlive("127.0.0.1", live.port) as conn, pytest.raises((ConnectionError, OSError)):
            conn.request("POST", "/v1/messages", messages_body("hi"), key="sk-conn")
        monkeypatch.undo()
        with KeepAlive("127.0.0.1", live.port) as conn:
            assert conn.request("POST", "/v1/messages", messages_body("hi"), key="sk-conn").status == 200
        closed = [r for r in live.journal() if r["kind"] == "connection" and r.get("end") == "server_error"]
        assert len(closed) == 1 and closed[0]["server_error"]["type"] == "KeyError" and closed[0]["server_error"]["where"] == "connection"


# -- exposure -------------------------------------------------------------------------------------
def test_a_non_loopback_host_warns_and_gets_a_token():
    from simulator.service import Simulator, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("::")
    assert Simulator(host="192.0.2.1").control_token and Simulator().control_token is None
    # 192.0.2.1 (TEST-NET-1) is on no interface: the bind fails, after the warning.
    done = subprocess.run([sys.executable, "-m", "harness.cli", "serve", "--host", "192.0.2.1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "warning: --host 192.0.2.1 is not loopback" in done.stderr
    assert done.returncode != 0


def test_the_control_token_is_required_on_every_control_request():
    import urllib.error
    import urllib.request

    with SimulatorProcess(["--control-token", "t0ken"]) as sim:
        assert sim.control_token == "t0ken"
        for method, path in [("GET", "/health"), ("GET", "/journal"), ("POST", "/reset"), ("GET", "/plan"), ("PUT", "/plan"), ("POST", "/lanes")]:
            for headers in ({}, {"authorization": "Bearer wrong"}):
                request = urllib.request.Request(sim.control_url + path, data=b"{}" if method != "GET" else None, method=method, headers=headers)
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(request, timeout=5)
                assert refused.value.code == 401 and "control_token" in json.load(refused.value)["error"]
        with KeepAlive("127.0.0.1", sim.port) as conn:
            conn.request("POST", "/v1/messages", messages_body("hi"), key="sk-tok")
        assert [r["kind"] for r in sim.journal("sk-tok")] == ["request"] or any(r["kind"] == "request" for r in sim.journal("sk-tok"))
        port = sim.open_lane("trial-x")  # the harness's client sends the token
        sim.close_lane(port)


def test_control_api_and_lanes_bind_the_host_given():
    with SimulatorProcess(["--host", "127.0.0.2"]) as sim:
        assert sim.base_url.startswith("http://127.0.0.2:") and sim.control_url.startswith("http://127.0.0.2:")
        assert sim.control_token is None  # loopback: no token needed
        port = sim.open_lane("lane-host")
        socket.create_connection(("127.0.0.2", port), timeout=2).close()
        control_port = int(sim.control_url.rsplit(":", 1)[1])
        assert {("127.0.0.2", port), ("127.0.0.2", sim.port), ("127.0.0.2", control_port)} <= listening(), "a listener is not on 127.0.0.2"
        sim.close_lane(port)


def listening() -> set[tuple[str, int]]:
    """(address, port) of every IPv4 listening socket on the machine, from /proc/net/tcp."""
    out = set()
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                address, port = fields[1].split(":")
                out.add((socket.inet_ntoa(bytes.fromhex(address)[::-1]), int(port, 16)))
    return out


def test_the_tls_private_key_is_readable_by_its_owner_only(tmp_path):
    from simulator.tls import ensure_certificates

    files = ensure_certificates(tmp_path / "fresh")
    assert stat.S_IMODE(files.key_file.stat().st_mode) == 0o600
    os.chmod(files.key_file, 0o644)  # as an older version left it
    ensure_certificates(tmp_path / "fresh")
    assert stat.S_IMODE(files.key_file.stat().st_mode) == 0o600


# -- fuzzing: directive grammar and nested JSON ---------------------------------------------------
unicode_digits = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=6)
values = st.one_of(
    unicode_digits,
    st.integers(0, 10**30).map(str),
    st.integers(0, 2000).map(str),
    st.text(max_size=8),
    st.builds(lambda a, b: a + b, st.integers(0, 99).map(str), unicode_digits),
)
keys = st.sampled_from(["words", "deltas", "thinking_words", "tool_turns", "ping_every", "tool", "bogus", ""])
nested = st.recursive(
    st.none() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=20,
)
tool_inputs = st.one_of(st.integers(1, 6000).map(deep), nested.map(json.dumps), st.text(max_size=12))


@st.composite
def directive_lines(draw) -> str:
    parts = [f"{draw(keys)}={draw(values)}" for _ in range(draw(st.integers(0, 4)))]
    line = "@sc " + " ".join(parts)
    if draw(st.booleans()):
        line += f" tool=X input={draw(tool_inputs)}"
    return line


def well_formed(response) -> None:
    if response.status == 200:
        assert (
            response.events()[-1].name == "message_stop"
            if response.headers.get("content-type", "").startswith("text/event-stream")
            else response.json()["type"] == "message"
        )
    else:
        assert response.status == 400, (response.status, response.body[:200])
        body = response.json()
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error" and body["error"]["message"]


@settings(max_examples=80)
@given(line=directive_lines(), stream=st.booleans(), thinking=st.booleans())
def test_fuzzed_directives_get_a_well_formed_answer_and_the_server_stays_up(sim, line, stream, thinking):
    body = messages_body(f"fuzz\n{line}", stream=stream, max_tokens=300, **({"thinking": {"type": "adaptive"}} if thinking else {}))
    with KeepAlive("127.0.0.1", sim.port) as conn:
        well_formed(conn.request("POST", "/v1/messages", body))
        assert conn.request("POST", "/v1/messages", messages_body("after")).status == 200


@settings(max_examples=40)
@given(
    depth=st.integers(1, 20_000),
    where=st.sampled_from(["metadata", "tools", "messages"]),
    path=st.sampled_from(["/v1/messages", "/v1/messages/count_tokens"]),
)
def test_fuzzed_nesting_gets_a_well_formed_answer_and_the_server_stays_up(sim, depth, where, path):
    value = json.loads(deep(min(depth, 500))) if depth <= 500 else None
    body = messages_body("nest", max_tokens=50)
    if value is not None:
        body[where] = value
        raw = json.dumps(body).encode()
    else:  # too deep for this process's json to build: sent as text
        raw = json.dumps({**body, where: "@"}).encode().replace(b'"@"', deep(depth).encode())
    with KeepAlive("127.0.0.1", sim.port) as conn:
        response = conn.request("POST", path, raw)
        if response.status == 200:
            assert "input_tokens" in response.json() or response.json()["type"] == "message"
        else:
            assert_api_error(response, 400, "invalid_request_error")
        assert conn.request("POST", "/v1/messages", messages_body("after")).status == 200


def test_a_non_ascii_digit_in_the_retry_count_header_is_ignored(sim):
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as raw:
        body = json.dumps(messages_body("retry header")).encode()
        raw.sendall(
            b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: sk-retry\r\nx-stainless-retry-count: \xb2\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body) + body
        )
        data = b""
        while chunk := raw.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    (record,) = [r for r in sim.journal("sk-retry") if r["kind"] == "request"]
    assert record["retry_count"] is None
    still_serving(sim)
