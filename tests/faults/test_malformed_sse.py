"""malformed_sse on the wire: garbled JSON, an event split in two writes gap_s apart, a lost blank line."""

from __future__ import annotations

import pytest

from tests.faults.client import BODY, SEED, exchange, records
from tests.wire import dechunk, h1_exchange, post


def test_garbled_event_has_broken_json(sim, plan):
    plan({"type": "malformed_sse", "mode": "garbled", "trigger": {"at": "events", "value": 5}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY), until_complete=True)
    events = result.events()
    assert len(events) == 100
    with pytest.raises(ValueError):
        events[5].json()
    assert events[4].json() and events[6].json()


def test_malformed_sse_split_writes_one_event_in_two_pieces_gap_s_apart(sim, plan):
    plan({"type": "malformed_sse", "mode": "split", "gap_s": 0.4, "trigger": {"at": "events", "value": 5}}, seed=SEED)
    result = exchange(sim, "split")
    events = result.events()
    assert result.ended == "complete" and len(events) == 36 and all(e.json() for e in events)  # intact once joined
    (request,) = records(sim, "split")
    writes = request["writes"]
    five = sum(len(frame) + 2 for frame in dechunk(result.body).split(b"\n\n")[:5])  # bytes of events 0-4
    # the first half of event 6 went out with events 0-4, alone; the rest gap_s later
    (k,) = [i for i, w in enumerate(writes) if w[0] == 5]
    assert five < writes[k][1] < five + len(dechunk(result.body).split(b"\n\n")[5]), (five, writes)
    gap = writes[k + 1][2] - writes[k][2]
    assert 0.4 <= gap < 2.4, gap  # gap_s apart, never less
    (note,) = request["faults"]
    assert note["type"] == "malformed_sse" and note["mode"] == "split"


def test_malformed_sse_no_blank_line_merges_the_event_with_the_next(sim, plan):
    plan({"type": "malformed_sse", "mode": "no_blank_line", "trigger": {"at": "events", "value": 5}}, seed=SEED)
    result = exchange(sim, "noblank")
    raw = dechunk(result.body)
    frames = raw.split(b"\n\n")
    # event 6 (index 5) lost its blank line: it and event 7 arrive as one SSE event
    merged = frames[5]
    assert merged.count(b"event: ") == 2 and merged.count(b"data: ") == 2, merged
    events = result.events()
    assert len(events) == 35  # 36 events, two of them merged
    with pytest.raises(ValueError):
        events[5].json()  # two data lines joined: not one JSON document
