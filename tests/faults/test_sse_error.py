"""sse_error on the wire: ``event: error`` after HTTP 200, then the end of the stream."""

from __future__ import annotations

from tests.faults.client import BODY
from tests.wire import h1_exchange, post


def test_sse_error_event_after_http_200(sim, plan):
    plan({"type": "sse_error", "trigger": {"at": "events", "value": 8}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY), until_complete=True)
    events = result.events()
    assert result.status == 200 and result.ended == "complete"
    assert len(events) == 9 and events[-1].name == "error"
    assert events[-1].json() == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
