"""Every trigger and selector key the README documents, seen on the wire (and in the journal,
which says what reached the kernel when): the budget and clock triggers, the idle_s, path_prefix,
window_s, streaming and doomed_probability selectors, and the request-id and rate-limit headers.
The fault types' own keys are tested beside each type.

Time-based checks have lower bounds only where the semantics are "not before" (sleeps never end
early) and upper bounds that only say "it ended", generous enough for fully busy cores."""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import UTC, datetime, timedelta

from simulator.faults import FaultPlan
from simulator.faults.decide import RequestFacts, request_rules
from tests.faults.client import SEED, body, exchange, once, records
from tests.wire import post

# -- triggers: budget and clock --------------------------------------------------------------


def test_budget_trigger_fires_when_elapsed_times_size_passes_the_value(sim, plan):
    payload = body(30, content="budget " + "x" * 2000)
    size = len(json.dumps(payload).encode())
    budget = size * 0.3  # byte-seconds: 0.3 s for this request
    plan({"type": "tcp_reset", "trigger": {"at": "budget", "value": budget}}, {"type": "slow", "tokens_per_second": 40}, seed=SEED)
    result = exchange(sim, "budget", payload)
    assert result.ended == "reset"
    (request,) = records(sim, "budget")
    assert request["body_bytes"] == size
    (note,) = [n for n in request["faults"] if n["type"] == "tcp_reset"]
    assert note["at"] == "budget"
    assert 0.3 <= note["t"] - request["t_headers"] < 2.3
    assert 0 < note["events_out"] < 36 and len(result.events()) == note["events_out"]
    # a request twice the size has the same budget spent in half the time
    big = body(30, content="budget " + "x" * (2 * size))
    exchange(sim, "budget-big", big)
    (request2,) = records(sim, "budget-big")
    (note2,) = [n for n in request2["faults"] if n["type"] == "tcp_reset"]
    assert budget / request2["body_bytes"] <= note2["t"] - request2["t_headers"] < note["t"] - request["t_headers"]


def test_clock_trigger_cuts_replies_in_flight_then_new_ones_until_until(sim, plan):
    low, high = plan(
        {"type": "tcp_reset", "trigger": {"at": "clock", "value": 0.6, "until": 1.5}}, {"type": "slow", "tokens_per_second": 20}, seed=SEED
    )
    in_flight = exchange(sim, "clock-a", body(30))  # started at once, ~1.5 s long: in flight at 0.6 s
    assert in_flight.ended == "reset"
    (a,) = records(sim, "clock-a")
    (note,) = [n for n in a["faults"] if n["type"] == "tcp_reset"]
    assert note["t"] >= low + 0.6 and 0 < note["events_out"] < 36
    # a reply starting inside [0.6, 1.5) is cut at once
    if time.monotonic() < low + 1.4:
        early = exchange(sim, "clock-b", body(30))
        (b,) = records(sim, "clock-b")
        if b["t_headers"] < low + 1.5:
            assert early.ended == "reset" and b["events_out"] <= 2, b["events_out"]
    # after `until` nothing is cut
    time.sleep(max(0.0, high + 1.55 - time.monotonic()))
    assert exchange(sim, "clock-c", body(10)).ended == "complete"


# -- selectors ---------------------------------------------------------------------------------


def test_idle_s_selects_only_requests_on_a_connection_idle_that_long(sim, plan):
    plan({"type": "fin", "trigger": {"at": "events", "value": 3}, "select": {"idle_s": 0.4}}, seed=SEED)
    request = post("/v1/messages", body(10), key="idle")
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):
            data += sock.recv(65536)
        time.sleep(0.5)  # idle at least 0.4 s (sleeps never end early)
        sock.sendall(request)
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    first, second = records(sim, "idle")
    assert first["end"] == "complete" and first["decision"]["rules"] == []
    assert second["end"] == "fault:fin" and second["decision"]["rules"] == [0] and second["decision"]["idle_s"] >= 0.4


def test_path_prefix_selects_by_path(sim, plan):
    plan({"type": "http_error", "status": 500, "select": {"path_prefix": "/v1/messages/count_tokens"}}, seed=SEED)
    tokens = once(sim, "/v1/messages/count_tokens", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "pp")
    assert tokens.status == 500
    assert exchange(sim, "pp", body(10)).ended == "complete"


def test_window_s_selects_by_time_since_the_plan_was_loaded(sim, plan):
    _, high = plan({"type": "tcp_reset", "trigger": {"at": "events", "value": 2}, "select": {"window_s": [0.5, 30]}}, seed=SEED)
    before = exchange(sim, "win-a", body(10))
    (a,) = records(sim, "win-a")
    assert (before.ended == "complete") == (a["t_headers"] < high + 0.5)
    time.sleep(max(0.0, high + 0.55 - time.monotonic()))
    assert exchange(sim, "win-b", body(10)).ended == "reset"


def test_streaming_selector(sim, plan):
    plan({"type": "http_error", "status": 529, "select": {"streaming": False}}, seed=SEED)
    assert exchange(sim, "st", body(10)).ended == "complete"
    plain = once(sim, "/v1/messages", body(10, stream=False), "st")
    assert plain.status == 529


def test_doomed_probability_on_the_wire_matches_the_pure_decision(sim, plan):
    data = {"seed": SEED, "faults": [{"type": "http_error", "status": 500, "select": {"probability": 0.0, "doomed": 1.0, "doomed_probability": 0.5}}]}
    plan(*data["faults"], seed=SEED)
    statuses = {}
    for key in ("dp-1", "dp-2", "dp-3"):
        statuses[key] = [once(sim, "/v1/messages", body(5), key).status for _ in range(6)]
    pure = FaultPlan.from_data(data)
    for key, got in statuses.items():
        seen = records(sim, key)
        want = []
        for record in seen:
            d = record["decision"]
            facts = RequestFacts(key, record["conversation"], d["attempt"], d["connection"], d["request"], 0.0, True, "/v1/messages", "http/1.1")
            want.append(500 if request_rules(pure, facts) else 200)
        assert got == want, (key, got, want)
    every = [s for got in statuses.values() for s in got]
    assert 500 in every and 200 in every  # doomed, yet not every attempt fails


# -- headers ---------------------------------------------------------------------------------------


def test_request_id_and_rate_limit_headers(sim, plan):
    plan(seed=SEED)
    for payload in (body(5), body(5, stream=False)):
        result = once(sim, "/v1/messages", payload, "hdr")
        headers = dict(line.split(": ", 1) for line in result.head.decode().split("\r\n")[1:])
        assert re.fullmatch(r"req_\w+", headers["request-id"])
        for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
            limit = int(headers[f"anthropic-ratelimit-{kind}-limit"])
            assert 0 <= int(headers[f"anthropic-ratelimit-{kind}-remaining"]) <= limit
            reset = datetime.strptime(headers[f"anthropic-ratelimit-{kind}-reset"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            assert timedelta(0) < reset - datetime.now(UTC) <= timedelta(seconds=61)  # RFC 3339, in the future
        if payload["stream"]:
            assert headers["content-type"] == "text/event-stream; charset=utf-8" and headers["cache-control"] == "no-cache"
    assert next(r["request_id"] for r in records(sim, "hdr")).startswith("req_")
