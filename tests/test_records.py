"""The shared rules and typed records: one percentile, one retry-status rule, journal records and
summary rows that survive their trip to disk unchanged."""

from __future__ import annotations

import dataclasses
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
    as_json = lambda record: json.loads(json.dumps(record.to_json()))  # noqa: E731 - writes are tuples in memory, lists on disk
    assert read_request == as_json(request) and read_connection == as_json(connection)
    assert RequestRecord(**{k: v for k, v in read_request.items() if k != "faults"}).to_json() == {**read_request, "faults": []}
    assert not {"active", "t_idle_since", "ordinals", "plan_generation", "live"} & set(read_connection)
    assert read_connection["kind"] == "connection" and read_connection["end"] == "client_close" and read_connection["lane"] == "sk-lane"
    assert read_connection["keys"] == ["sk-a"] and read_connection["requests"] == 1 and read_connection["seq"] == 2
    fired, missed = read_request["faults"]
    assert fired == {"rule": 0, "type": "tcp_reset", "name": "cut", "at": "events", "t": fired["t"], "events_out": 2, "bytes_out": 40}
    assert missed == {"rule": 1, "type": "tcp_reset", "name": "cut", "at": "events", "not_reached": "the answer ended first"}
    assert read_request["writes"] == [[2, 40, read_request["t_first_byte"]]] and read_request["end"] == "complete"


SUMMARY_KEYS = [
    "scenario",
    "client",
    "skipped",
    "trials",
    "recovered",
    "recovery_rate",
    "recovery_ci",
    "faulted",
    "recovered_faulted",
    "hangs",
    "data_loss",
    "duplicated",
    "failed",
    "harness_errors",
    "clear_errors",
    "outcomes",
    "decay",
    "backoff_ms",
    "time_to_recover_ms",
    "amplification",
    "bytes_resent",
    "mean_elapsed_s",
    "error_lines",
    "keepalive",
]


def test_summary_rows_are_typed_and_summary_json_keeps_its_keys(tmp_path):
    import csv
    import json

    from harness.measure import metrics
    from harness.present import gate, report

    def trial(client, outcome, ttr=None, error=None):
        return {
            "scenario": "cut",
            "client": client,
            "trial": 0,
            "outcome": outcome,
            "faults_fired": 1,
            "error_line": error,
            "backoff_ms": [500.0],
            "time_to_recover_ms": ttr,
            "bytes_needed": 100,
            "bytes_out": 150,
            "elapsed_s": 2.0,
            "attempts": [[{"ok": False, "t_start": 0.0, "t_end": 0.1}, {"ok": outcome == "recovered", "t_start": 0.6, "t_end": 1.0}]],
        }

    records = [
        trial("a", "recovered", 800.0),
        trial("a", "failed", error="boom"),
        trial("b", "hung"),
        {"scenario": "cut", "client": "c", "skipped": "needs h2"},
    ]
    rows = metrics.summarize(records)
    assert all(isinstance(row, metrics.SummaryRow) for row in rows) and [r.client for r in rows] == ["a", "b", "c"]
    a = rows[0]
    assert (a.trials, a.recovered, a.failed, a.clear_errors, a.amplification, a.time_to_recover_ms["p50"]) == (2, 1, 1, 1, 1.5, 800.0)
    assert a["recovered"] == a.recovered and a.get("nothing") is None  # summary.json's readers still find their keys
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.trials = 3
    report.write_all(tmp_path, rows, {"run_id": "t"}, records=records)
    written = json.loads((tmp_path / "summary.json").read_text())["rows"]
    assert [list(row) for row in written] == [SUMMARY_KEYS] * 3  # the file keeps its keys, in their order
    assert [metrics.SummaryRow.from_json(row) for row in written] == rows
    with open(tmp_path / "summary.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["client"], r["trials"], r["recovered"], r["skipped"]) for r in table] == [
        ("a", "2", "1", ""),
        ("b", "1", "0", ""),
        ("c", "0", "0", "needs h2"),
    ]
    verdicts = gate.evaluate(rows, gate.Policy())
    assert [v.passed for v in verdicts] == [True, False, True] and "hang" in verdicts[1].reasons[0]
