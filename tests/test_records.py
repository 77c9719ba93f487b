"""The shared rules and typed records: one percentile, one retry-status rule, journal records and
summary rows that survive their trip to disk unchanged."""

from __future__ import annotations

import math

import pytest

from harness.measure.metrics import percentile, percentiles
from simulator.api.errors import retryable_status


def test_percentile_is_nearest_rank_and_agrees_with_percentiles():
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 7.0, 8.0, 6.0, 10.0]
    assert percentile(values, 0.5) == 5.0
    assert percentile(values, 0.99) == 10.0
    assert percentile(values, 0.0) == 1.0
    assert percentile([4.0], 0.9) == 4.0
    assert math.isnan(percentile([], 0.5))
    table = percentiles(values)
    assert all(table[f"p{round(q * 100)}"] == percentile(values, q) for q in (0.1, 0.5, 0.9, 0.99))


def test_retryable_status_is_the_sdk_rule():
    assert [s for s in range(400, 600) if retryable_status(s)] == [408, 409, 429, *range(500, 600)]


def test_records_round_trip_through_their_json_line_and_keep_runtime_state_out():
    import json
    from types import SimpleNamespace

    from simulator.journal import Journal
    from simulator.records import RequestRecord, fault_note

    journal = Journal()
    connection = journal.open_connection("127.0.0.1:5000", "127.0.0.1:8080")
    connection["lane"], connection["protocol"] = "sk-lane", "h2"
    connection.live.active, connection.live.t_idle_since, connection.live.ordinals = 1, 12.5, {"sk-lane": 3}
    info = SimpleNamespace(api_key="sk-a", retry_count=1, user_agent="ua", method="POST", path="/v1/messages", body_sha256="ab" * 32, body_bytes=99)
    request = journal.open_request(connection, 1, "req_1", info, 1.0)
    journal.wrote(request, 2, 40)
    rule = SimpleNamespace(name="cut", fault=SimpleNamespace(kind="tcp_reset"), trigger=SimpleNamespace(at="events"))
    request["faults"].append(fault_note(0, rule, wire=request))
    request["faults"].append(fault_note(1, rule, not_reached="the answer ended first"))
    request["status"], request["capacity"] = 200, {"outcome": "served"}
    assert "capacity" in request and "t_schedule" not in request and request.get("t_schedule") is None
    with pytest.raises(KeyError):
        request["active"] = 1  # outside the schema: refused, never written
    journal.finish(request, "complete")
    journal.finish(connection, "client_close")
    journal.finish(connection, "again")  # a second end changes nothing
    lines = journal.page()[0]
    assert len(lines) == 2
    read_request, read_connection = (json.loads(line) for line in lines)
    assert read_request == request.to_json() and read_connection == connection.to_json()
    assert RequestRecord(**{k: v for k, v in read_request.items() if k != "faults"}).to_json() == {**read_request, "faults": []}
    assert not {"active", "t_idle_since", "ordinals", "plan_generation", "live"} & set(read_connection)
    assert read_connection["kind"] == "connection" and read_connection["end"] == "client_close" and read_connection["lane"] == "sk-lane"
    assert read_connection["keys"] == ["sk-a"] and read_connection["requests"] == 1 and read_connection["seq"] == 2
    fired, missed = read_request["faults"]
    assert fired == {"rule": 0, "type": "tcp_reset", "name": "cut", "at": "events", "t": fired["t"], "events_out": 2, "bytes_out": 40}
    assert missed == {"rule": 1, "type": "tcp_reset", "name": "cut", "at": "events", "not_reached": "the answer ended first"}
    assert read_request["writes"] == [[2, 40, read_request["t_first_byte"]]] and read_request["end"] == "complete"
