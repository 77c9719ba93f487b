"""tcp_reset on the wire: ECONNRESET after exactly the events the plan named, on HTTP/1.1 and h2."""

from __future__ import annotations

from tests.faults.client import BODY, records
from tests.wire import GoAwayFrame, H2Probe, RstStreamFrame, h1_exchange, post


def test_tcp_reset_after_exactly_50_events_is_econnreset_on_http11(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "events", "value": 50}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY, key="rst50"))
    assert result.ended == "reset"
    assert len(result.events()) == 50
    (request,) = records(sim, "rst50")
    assert request["end"] == "fault:tcp_reset" and request["events_out"] == 50
    assert request["faults"][0]["events_out"] == 50


def test_tcp_reset_on_h2_after_n_events(sim, plan):
    plan({"type": "tcp_reset", "trigger": {"at": "events", "value": 30}})
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=BODY, key="h2rst")
        probe.read_until(lambda p: False, timeout_s=3)
        assert probe.closed == "reset"
        assert len(probe.events(stream)) == 30
        assert not probe.of(GoAwayFrame) and not probe.of(RstStreamFrame)
