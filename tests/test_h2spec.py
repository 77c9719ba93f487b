"""A peer's conformance suite: h2spec (the HTTP/2 conformance tests, `make setup` installs it into
tools/bin) against the simulator on h2c (prior knowledge) and on h2 over TLS (ALPN).

Accepted failures, each with its reason; the list is exact (an accepted case that starts passing
fails this test too, so the list never goes stale):

- h2c ``http2/3.5/2`` "Sends invalid connection preface": one plaintext port serves HTTP/1.1 and
  h2c by sniffing the preface, so bytes that are not the preface are read as an HTTP/1.1 request
  and answered with a 400 (then the connection is closed). Over TLS, where ALPN already chose h2,
  an invalid preface is a connection error (GOAWAY PROTOCOL_ERROR, then close): no failure there.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ElementTree

import pytest

from tests.support import TOOLS, require

ACCEPTED = {
    "h2c": {"http2/3.5/2"},
    "tls": set(),
}
H2SPEC_TIMEOUT_S = 240


def run_h2spec(binary: str, port: int, tls: bool, report) -> dict[str, str | None]:
    """Run h2spec; return {case id: None if it passed, else the failure text} from its JUnit report."""
    command = [binary, "-h", "127.0.0.1", "-p", str(port), "-P", "/v1/models", "-o", "5", "-j", str(report)]
    if tls:
        command += ["-t", "-k"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=H2SPEC_TIMEOUT_S)
    assert report.exists(), f"h2spec wrote no JUnit report (exit {done.returncode}): {done.stderr[-2000:]}"
    cases: dict[str, str | None] = {}
    for suite in ElementTree.parse(report).getroot().iter("testsuite"):
        for index, case in enumerate(suite.iter("testcase"), start=1):
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            skipped = case.find("skipped")
            key = f"{suite.get('package')}/{index}"
            cases[key] = (
                None
                if problem is None and skipped is None
                else ("skipped" if problem is None else (problem.text or problem.get("message") or "failed"))
            )
    return cases


@pytest.mark.parametrize("mode", ["h2c", "tls"])
def test_h2spec_passes_except_the_documented_cases(start_simulator, tmp_path, mode):
    binary = require(TOOLS / "bin" / "h2spec", "h2spec (make setup: go install github.com/summerwind/h2spec/cmd/h2spec)")
    sim = start_simulator("--seed", "3")
    cases = run_h2spec(binary, sim.port, mode == "tls", tmp_path / f"h2spec-{mode}.xml")
    failed = {key: text for key, text in cases.items() if text is not None}
    passed = len(cases) - len(failed)
    print(f"\nh2spec {mode}: {len(cases)} tests, {passed} passed, {len(failed)} failed: {sorted(failed)}")
    assert len(cases) >= 145, f"h2spec ran only {len(cases)} tests"
    assert set(failed) == ACCEPTED[mode], {key: failed.get(key, "passed") for key in set(failed) ^ ACCEPTED[mode]}


def test_invalid_preface_after_alpn_h2_is_a_goaway_protocol_error_not_an_http11_answer(simulator):
    """ALPN chose h2: bytes that are not the preface get GOAWAY(PROTOCOL_ERROR) and a close."""
    import socket
    import ssl

    from hyperframe.frame import Frame, GoAwayFrame

    context = ssl.create_default_context(cafile=simulator.ca_file)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", simulator.port), timeout=5) as raw, context.wrap_socket(raw, server_hostname="localhost") as sock:
        assert sock.selected_alpn_protocol() == "h2"
        sock.sendall(b"INVALID CONNECTION PREFACE\r\n\r\n")
        data = b""
        for _ in range(1000):
            try:
                chunk = sock.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
    assert b"HTTP/1.1" not in data
    frames = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
    assert [g.error_code for g in goaways] == [1], frames  # PROTOCOL_ERROR, then the connection closed
