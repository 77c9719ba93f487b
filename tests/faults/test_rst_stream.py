"""rst_stream on the wire: RST_STREAM with the chosen code, the connection living on."""

from __future__ import annotations

from tests.faults.client import BODY, names
from tests.wire import H2Probe, HeadersFrame, RstStreamFrame


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
