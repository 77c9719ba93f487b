"""goaway on the wire: abrupt and graceful, covering the stream in flight or not, and grace_s."""

from __future__ import annotations

from tests.faults.client import BODY, SEED, body, names
from tests.wire import GoAwayFrame, H2Probe, RstStreamFrame


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
    plan(
        {"type": "goaway", "last_stream_id": "current", "graceful": True, "trigger": {"at": "events", "value": 10}},
        {"type": "slow", "tokens_per_second": 400},
    )
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


def test_graceful_goaway_grace_s_bounds_the_wait_for_covered_streams(sim, plan):
    # The covered stream would take ~3 s at 10 tokens/s; grace_s = 0.5 ends the connection first.
    plan(
        {"type": "goaway", "last_stream_id": "current", "graceful": True, "grace_s": 0.5, "trigger": {"at": "events", "value": 3}},
        {"type": "slow", "tokens_per_second": 10},
        seed=SEED,
    )
    with H2Probe("127.0.0.1", sim.port) as probe:
        stream = probe.request(body=body(30), key="grace")
        assert probe.read_until(lambda p: p.closed is not None, timeout_s=10)
        goaways = [f for f in probe.frames if isinstance(f.frame, GoAwayFrame)]
        assert len(goaways) == 2 and goaways[0].frame.last_stream_id == stream and goaways[0].frame.error_code == 0
        assert not probe.ended(stream) and 3 <= len(probe.events(stream)) < 36  # cut by the grace period
        waited = goaways[1].t - goaways[0].t
        assert 0.45 <= waited < 2.5, waited  # client clock: the final GOAWAY came grace_s after the first
