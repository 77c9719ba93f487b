"""truncated_clean on the wire: a clean end of the body without message_stop."""

from __future__ import annotations

from tests.faults.client import BODY, names
from tests.wire import h1_exchange, post


def test_truncated_clean_ends_the_body_without_message_stop(sim, plan):
    plan({"type": "truncated_clean", "trigger": {"at": "events", "value": 99}})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY), until_complete=True)
    assert result.ended == "complete" and len(result.events()) == 99
    assert "message_stop" not in names(result.events())
