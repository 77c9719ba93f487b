"""idle_eviction on the wire: the idle connection is black-holed, a fresh one works."""

from __future__ import annotations

import socket
import time

import pytest

from tests.faults.client import BODY
from tests.wire import h1_exchange, post


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
