"""The control API as the README documents it, through HTTP on its loopback port: /health, /reset,
GET|PUT|DELETE /plan, /journal?key=&since=, errors for bad input."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from harness.drive.simulator_process import SimulatorProcess
from tests.wire import h1_exchange, post

BODY = {"model": "m", "max_tokens": 200, "stream": True, "messages": [{"role": "user", "content": "hi\n@sc deltas=10"}]}


@pytest.fixture(scope="module")
def sim():
    with SimulatorProcess(["--seed", "4"]) as process:
        yield process


def call(sim, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"{sim.control_url}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def stream(sim, key: str) -> str:
    return h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY, key=key), until_complete=True).ended


def test_health_reports_the_urls_and_open_connections(sim):
    status, health = call(sim, "GET", "/health")
    assert status == 200 and health["status"] == "ok"
    assert health["base_url"] == sim.base_url and health["control_url"] == sim.control_url
    assert isinstance(health["open_connections"], int)


def test_plan_put_get_delete_round_trip_and_take_effect(sim):
    plan = {"seed": 3, "faults": [{"type": "tcp_reset", "trigger": {"at": "events", "value": 4}, "select": {"attempts": [1]}}]}
    status, loaded = call(sim, "PUT", "/plan", json.dumps(plan).encode())
    assert status == 200 and loaded["status"] == "loaded" and loaded["rules"] == 1
    status, got = call(sim, "GET", "/plan")
    assert status == 200 and got["seed"] == 3 and [f["type"] for f in got["faults"]] == ["tcp_reset"]
    assert got["faults"][0]["trigger"] == {"at": "events", "value": 4}
    assert stream(sim, "plan-1") == "reset"  # in effect
    status, cleared = call(sim, "DELETE", "/plan")
    assert status == 200 and cleared["status"] == "cleared"
    assert call(sim, "GET", "/plan")[1]["faults"] == []
    assert stream(sim, "plan-2") == "complete"  # gone


def test_bad_plans_are_400_with_the_key_path(sim):
    status, error = call(sim, "PUT", "/plan", b'{"faults": [{"type": "tcp_reset", "trigger": {"at": "sometime"}}]}')
    assert status == 400 and error["path"] == "faults[0].trigger.at"
    status, error = call(sim, "PUT", "/plan", b"{not json")
    assert status == 400 and "not JSON" in error["error"]
    assert call(sim, "GET", "/nope")[0] == 404


def test_journal_since_returns_only_later_records_and_key_selects(sim):
    call(sim, "DELETE", "/plan")
    assert stream(sim, "since-a") == "complete"
    first = sim.journal("since-a")
    last_seq = max(r["seq"] for r in first)
    assert stream(sim, "since-b") == "complete"
    sim.journal("since-b")  # wait until its records are closed
    status, later = call(sim, "GET", f"/journal?since={last_seq}")
    assert status == 200 and later["records"]
    assert all(r["seq"] > last_seq for r in later["records"])
    assert {r["key"] for r in later["records"] if r["kind"] == "request"} == {"since-b"}
    _, by_key = call(sim, "GET", "/journal?key=since-a")
    assert {r["key"] for r in by_key["records"] if r["kind"] == "request"} == {"since-a"}
    _, none = call(sim, "GET", f"/journal?key=since-a&since={last_seq}")
    assert none["records"] == []


def test_reset_empties_the_journal_and_restarts_attempt_counting(sim):
    plan = {"faults": [{"type": "tcp_reset", "trigger": {"at": "events", "value": 4}, "select": {"attempts": [2]}}]}
    call(sim, "PUT", "/plan", json.dumps(plan).encode())
    try:
        assert [stream(sim, "reset-k") for _ in range(2)] == ["complete", "reset"]  # the 2nd attempt is hit
        assert sim.journal("reset-k")
        status, done = call(sim, "POST", "/reset")
        assert status == 200 and done["status"] == "reset"
        assert sim.journal("reset-k") == [] and call(sim, "GET", "/journal")[1]["records"] == []
        assert call(sim, "GET", "/plan")[1]["faults"][0]["type"] == "tcp_reset"  # the plan stays
        # counting starts again: the same conversation is attempt 1, then 2
        assert [stream(sim, "reset-k") for _ in range(2)] == ["complete", "reset"]
        assert [r["decision"]["attempt"] for r in sim.journal("reset-k") if r["kind"] == "request"] == [1, 2]
    finally:
        call(sim, "DELETE", "/plan")
