"""The fault plan with no sockets: validation, replayability, rates and the retry-decay mixture."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.fault_state import FaultState
from simulator.faults import FaultPlan, PlanError
from simulator.faults.decide import ConnectionFacts, RequestFacts, connection_rule, request_rules
from simulator.records import ConnectionRecord


def facts(trial="t", logical="L", attempt=1, connection=1, request=1, elapsed_s=0.0, streaming=True, path="/v1/messages", idle_s=0.0):
    return RequestFacts(trial, logical, attempt, connection, request, elapsed_s, streaming, path, "http/1.1", idle_s)


def plan(*faults, seed=0):
    return FaultPlan.from_data({"seed": seed, "faults": list(faults)})


# -- decisions are a pure function ---------------------------------------------------------------

REPLAY_PLAN = {
    "seed": 11,
    "faults": [
        {"type": "tcp_reset", "select": {"probability": 0.4}},
        {"type": "fin", "select": {"doomed": 0.3, "doomed_probability": 0.8, "probability": 0.0}},
        {"type": "stall", "seconds": 1, "select": {"attempts": [2, 3], "probability": 0.5}},
    ],
}


def arrivals(order: str) -> list[tuple[str, str]]:
    """(trial, conversation) per request: 12 trials x 2 conversations x 4 attempts, in two orders that
    keep each conversation's attempts in sequence but interleave trials differently."""
    per_trial = {f"trial-{t}": [(f"trial-{t}", conv) for _ in range(4) for conv in ("A", "B")] for t in range(12)}
    if order == "trial by trial":
        return [item for trial in per_trial.values() for item in trial]
    out, queues = [], [list(q) for q in reversed(list(per_trial.values()))]  # round robin, last trial first
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def replay(order: str) -> dict[str, list[int]]:
    """Drive the live counters with one connection per request; key each decision by its facts."""
    state = FaultState(FaultPlan.from_data(REPLAY_PLAN))
    out = {}
    for trial, conversation in arrivals(order):
        facts_ = state.request_facts(ConnectionRecord(1, "peer", "listener", 0.0, 0.0), trial, conversation, True, "/v1/messages", 0.0)
        out[f"{trial}/{conversation}/{facts_.attempt}"] = list(request_rules(state.plan, facts_))
    return out


REPLAY_SCRIPT = "import json, sys; from tests.test_fault_plan import replay; print(json.dumps(replay(sys.argv[1])))"


def test_decisions_replay_across_processes_and_arrival_orders():
    """The same plan gives the same decision per (trial, conversation, attempt) in another process
    (another hash seed) and in another arrival order; and the decisions are not trivial."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = replay("trial by trial")
    root = Path(__file__).resolve().parent.parent
    for order, hash_seed in (("trial by trial", "1"), ("round robin", "4242")):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(root))
        done = subprocess.run([sys.executable, "-c", REPLAY_SCRIPT, order], capture_output=True, text=True, cwd=root, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == here, order
    assert replay("round robin") == here
    fired = [rules for rules in here.values() if rules]
    assert 0 < len(fired) < len(here) and {i for rules in fired for i in rules} == {0, 1, 2}


def test_seed_changes_decisions():
    decisions = {
        seed: [request_rules(plan({"type": "fin", "select": {"probability": 0.5}}, seed=seed), facts(trial=str(i))) for i in range(64)]
        for seed in (1, 2)
    }
    assert decisions[1] != decisions[2]


@pytest.mark.parametrize("p", [0.05, 0.3, 0.7])
def test_probability_rate_within_binomial_bounds(p):
    rule = plan({"type": "tcp_reset", "select": {"probability": p}}, seed=42)
    n = 4000
    hits = sum(bool(request_rules(rule, facts(trial=f"trial-{i}"))) for i in range(n))
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(hits - n * p) < 4 * sigma


def retry_decay(q: float, p: float, attempts: int, n: int, seed: int = 7) -> list[tuple[int, int]]:
    """Simulate clients that retry a logical request until it succeeds: (tried, recovered) per attempt."""
    rule = plan({"type": "tcp_reset", "select": {"probability": p, "doomed": q}}, seed=seed)
    tried, recovered = [0] * attempts, [0] * attempts
    for i in range(n):
        for k in range(1, attempts + 1):
            tried[k - 1] += 1
            if not request_rules(rule, facts(trial=f"trial-{i}", logical="conversation", attempt=k)):
                recovered[k - 1] += 1
                break
    return list(zip(tried, recovered))


def analytic(q: float, p: float, k: int) -> float:
    """P(attempt k succeeds | attempts 1..k-1 failed) for a doomed share q and transient rate p."""
    return (1 - q) * p ** (k - 1) * (1 - p) / (q + (1 - q) * p ** (k - 1))


@pytest.mark.parametrize("q,p", [(0.0, 0.5), (0.2, 0.4), (0.35, 0.2)])
def test_doomed_mixture_gives_the_configured_decay(q, p):
    curve = retry_decay(q, p, attempts=5, n=6000)
    for k, (tried, recovered) in enumerate(curve, start=1):
        if tried < 200:
            continue
        want = analytic(q, p, k)
        sigma = math.sqrt(want * (1 - want) / tried)
        assert abs(recovered / tried - want) < 4 * sigma + 1e-9, (k, tried, recovered, want)
    rates = [r / t for t, r in curve if t >= 200]
    if q == 0:  # independent faults: a flat curve
        assert max(rates) - min(rates) < 0.1
    else:  # doomed requests dominate later attempts: the curve decays
        assert rates[0] > rates[-1] + 0.2


def test_doomed_requests_fail_on_every_attempt():
    """probability 0, doomed 0.5: about half the logical requests fail on every attempt, the rest
    never (ignoring ``doomed`` would make none fail)."""
    rule = plan({"type": "tcp_reset", "select": {"probability": 0.0, "doomed": 0.5}}, seed=3)
    n = 400
    doomed = 0
    for i in range(n):
        hits = [bool(request_rules(rule, facts(trial=f"x{i}", attempt=k))) for k in range(1, 8)]
        assert len(set(hits)) == 1, hits  # all attempts alike: doomed or spared
        doomed += hits[0]
    assert abs(doomed - n * 0.5) < 4 * math.sqrt(n * 0.25), doomed


def test_doomed_probability_is_the_per_attempt_failure_rate_of_doomed_requests():
    rule = plan({"type": "tcp_reset", "select": {"probability": 0.0, "doomed": 0.5, "doomed_probability": 0.7}}, seed=3)
    hits = [[bool(request_rules(rule, facts(trial=f"x{i}", attempt=k))) for k in range(1, 11)] for i in range(400)]
    doomed = [h for h in hits if any(h)]
    spared = [h for h in hits if not any(h)]
    n = 10 * len(doomed)
    rate = sum(map(sum, doomed)) / n
    assert abs(rate - 0.7) < 4 * math.sqrt(0.21 / n), rate
    assert any(len(set(h)) == 2 for h in doomed)  # a doomed request may survive an attempt
    assert 150 < len(spared) < 250


# -- selectors ---------------------------------------------------------------------------------------


def test_selectors_narrow_by_attempt_connection_request_window_streaming_and_idle():
    assert request_rules(plan({"type": "fin", "select": {"attempts": [2]}}), facts(attempt=1)) == ()
    assert request_rules(plan({"type": "fin", "select": {"attempts": [2]}}), facts(attempt=2)) == (0,)
    assert request_rules(plan({"type": "fin", "select": {"connections": [3]}}), facts(connection=3)) == (0,)
    assert request_rules(plan({"type": "fin", "select": {"requests": [1]}}), facts(request=2)) == ()
    window = plan({"type": "fin", "select": {"window_s": [1.0, 2.0]}})
    assert [bool(request_rules(window, facts(elapsed_s=t))) for t in (0.5, 1.0, 1.99, 2.0)] == [False, True, True, False]
    assert request_rules(plan({"type": "fin", "select": {"streaming": False}}), facts(streaming=True)) == ()
    assert request_rules(plan({"type": "fin"}), facts(path="/v1/models")) == ()
    eviction = plan({"type": "idle_eviction", "idle_s": 90})
    assert request_rules(eviction, facts(idle_s=89.9)) == () and request_rules(eviction, facts(idle_s=90)) == (0,)


def test_connection_rules_fire_at_their_phase_for_the_chosen_ordinals():
    p = plan({"type": "tcp_reset", "trigger": {"at": "accept"}, "select": {"connections": [1, 3]}}, {"type": "fin", "trigger": {"at": "tls"}})
    assert [connection_rule(p, ConnectionFacts("", n, 0.0, "accept")) for n in (1, 2, 3)] == [0, None, 0]
    assert connection_rule(p, ConnectionFacts("", 2, 0.0, "tls")) == 1
    assert request_rules(p, facts()) == ()  # connection rules never fire on a request


def test_runtime_counts_attempts_per_trial_and_conversation():
    state = FaultState(plan({"type": "fin"}))
    conn_a, conn_b = (ConnectionRecord(n, "peer", "listener", 0.0, 0.0) for n in (1, 2))
    seen = [
        state.request_facts(c, trial, logical, True, "/v1/messages", 0)
        for c, trial, logical in [(conn_a, "k1", "A"), (conn_a, "k1", "A"), (conn_b, "k1", "A"), (conn_b, "k2", "A"), (conn_b, "k1", "B")]
    ]
    assert [(f.attempt, f.connection, f.request) for f in seen] == [(1, 1, 1), (2, 1, 2), (3, 2, 3), (1, 1, 1), (1, 2, 4)]
    state.load(state.plan)  # a new generation starts counting again
    assert state.request_facts(conn_a, "k1", "A", True, "/v1/messages", 0).attempt == 1


# -- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad,path",
    [
        ({"type": "nope"}, "faults[0].type"),
        ({"type": "tcp_reset", "extra": 1}, "faults[0].extra"),
        ({"type": "stall", "seconds": -1}, "faults[0].seconds"),
        ({"type": "stall", "seconds": "soon"}, "faults[0].seconds"),
        ({"type": "rst_stream", "code": "BAD"}, "faults[0].code"),
        ({"type": "goaway", "last_stream_id": "next"}, "faults[0].last_stream_id"),
        ({"type": "http_error", "status": 200}, "faults[0].status"),
        ({"type": "http_error", "trigger": {"at": "events", "value": 2}}, "faults[0].trigger.at"),
        ({"type": "sse_error", "trigger": {"at": "accept"}}, "faults[0].trigger.at"),
        ({"type": "tcp_reset", "trigger": {"at": "accept"}, "select": {"attempts": [1]}}, "faults[0].select"),
        ({"type": "tcp_reset", "trigger": {"at": "events", "value": 1.5}}, "faults[0].trigger.value"),
        ({"type": "tcp_reset", "trigger": {"at": "bytes", "value": 3, "block": "text"}}, "faults[0].trigger.block"),
        ({"type": "tcp_reset", "select": {"probability": 1.5}}, "faults[0].select.probability"),
        ({"type": "tcp_reset", "select": {"window_s": [5, 1]}}, "faults[0].select.window_s"),
        ({"type": "tcp_reset", "select": {"attempts": []}}, "faults[0].select.attempts"),
        ({"type": "slow", "jitter": 2}, "faults[0].jitter"),
        ({"type": "malformed_sse", "mode": "weird"}, "faults[0].mode"),
    ],
)
def test_invalid_rules_name_the_key(bad, path):
    with pytest.raises(PlanError) as error:
        plan(bad)
    assert error.value.path == path


def test_h2_only_faults_refused_for_http11_only_transports():
    with pytest.raises(PlanError, match="needs HTTP/2"):
        FaultPlan.from_data({"faults": [{"type": "rst_stream"}]}).check(("http/1.1",))
    FaultPlan.from_data({"faults": [{"type": "rst_stream"}]}).check(("http/1.1", "h2"))


fault_tables = st.fixed_dictionaries(
    {"type": st.sampled_from(["tcp_reset", "fin", "rst_stream", "goaway", "stall", "blackhole", "sse_error", "truncated_clean", "slow"])},
    optional={
        "trigger": st.fixed_dictionaries({"at": st.sampled_from(["headers", "events", "bytes", "ms"])}, optional={"value": st.integers(0, 500)}),
        "select": st.fixed_dictionaries(
            {},
            optional={
                "attempts": st.lists(st.integers(1, 5), min_size=1, max_size=3),
                "probability": st.floats(0, 1),
                "doomed": st.floats(0, 1),
                "window_s": st.tuples(st.floats(0, 10), st.floats(10, 20)).map(list),
            },
        ),
    },
)


@given(st.lists(fault_tables, max_size=4), st.integers(0, 2**31))
def test_valid_plans_round_trip(tables, seed):
    loaded = FaultPlan.from_data({"seed": seed, "faults": tables})
    assert FaultPlan.from_data(loaded.to_data()) == loaded


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["type", "trigger", "select", "at", "value", "seconds", "code", "faults", "seed", "probability"]) | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(junk)
def test_arbitrary_documents_load_or_fail_with_a_plan_error(document):
    try:
        FaultPlan.from_data(document)
    except PlanError as error:
        assert error.path is not None and error.message
