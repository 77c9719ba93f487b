"""stall on the wire: silence for the seconds asked (or forever) while PINGs are answered."""

from __future__ import annotations

from itertools import pairwise

from tests.faults.client import BODY, records
from tests.wire import H2Probe, HeadersFrame, PingFrame


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
    gaps = [(b[2] - a[2], a[0]) for a, b in pairwise(writes)]
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
