"""blackhole on the wire: nothing answered, not even a PING, and never a close."""

from __future__ import annotations

from tests.faults.client import BODY
from tests.wire import H2Probe, PingFrame


def test_blackhole_answers_no_ping_and_never_closes(sim, plan):
    plan({"type": "blackhole", "trigger": {"at": "events", "value": 12}})
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=BODY, key="bh")
        assert probe.read_until(lambda p: len(p.events(stream)) >= 12)
        probe.ping(b"anyone?!")
        assert not probe.read_until(lambda p: any("ACK" in f.flags for f in p.of(PingFrame)), timeout_s=1.0)
        assert probe.closed is None and len(probe.events(stream)) == 12
