"""fin on the wire: EOF mid-body without the last chunk; over TLS with and without close_notify."""

from __future__ import annotations

import socket
import ssl

import pytest

from simulator import sse
from tests.faults.client import BODY
from tests.wire import dechunk, h1_exchange, post


def test_fin_mid_body_is_eof_without_the_last_chunk(sim, plan):
    plan({"type": "fin", "trigger": {"at": "events", "value": 20}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY, key="fin20"))
    assert result.ended == "eof"
    assert not result.body.endswith(b"0\r\n\r\n")
    assert len(result.events()) == 20


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
