"""Scenario files: the format's validation, and every library scenario run for real."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import scenario
from harness.clients import registry
from harness.clients.adapter import ClientAdapter
from harness.drive import runner
from harness.drive.simulator_process import SimulatorProcess
from tests.support import bad_scenario

LIBRARY = scenario.library()


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_scenario_validates_and_documents_itself(path):
    item = scenario.load(path)
    assert item.name == path.stem
    assert item.title and item.shape and item.expect and item.reproduces
    assert item.faults.rules or item.toxics or item.needs_lab
    plan = item.client_script()
    assert plan["turns"] and all("@sc " in turn["prompt"] for turn in plan["turns"])


def test_the_library_covers_every_reported_shape():
    kinds = {rule.fault.kind for path in LIBRARY for rule in scenario.load(path).faults.rules}
    assert {"tcp_reset", "fin", "truncated_clean", "idle_eviction", "goaway", "rst_stream", "http_error", "sse_error", "stall"} <= kinds
    actions = {step.action for path in LIBRARY for step in scenario.load(path).toxics}
    assert {"add", "down", "up"} <= actions
    assert len(LIBRARY) >= 12


@pytest.mark.parametrize(
    "text,key,fix",
    [
        ("name = 'x'\n", "version", "required"),
        ("version = 2\n", "version", "reads version 1"),
        ("version = 1\nwrods = 3\n", "wrods", "unknown key"),
        ("version = 1\n[conversation]\nwrods = 3\n", "conversation.wrods", "did you mean 'words'"),
        ("version = 1\ntrials = 'ten'\n", "trials", "whole number"),
        ("version = 1\ntime_scale = 0\n", "time_scale", "> 0"),
        ("version = 1\ntransports = ['h3']\n", "transports[0]", "http/1.1, h2"),
        ("version = 1\ntransports = ['http/1.1']\n[[faults]]\ntype = 'rst_stream'\n", "faults[0].type", "needs HTTP/2"),
        (
            "version = 1\n[conversation]\nwords = 10\n[[faults]]\ntype = 'tcp_reset'\ntrigger = { at = 'events', value = 500 }\n",
            "faults[0].trigger.value",
            "at most",
        ),
        (
            "version = 1\n[[faults]]\ntype = 'tcp_reset'\ntrigger = { at = 'events', value = 3, block = 'thinking' }\n",
            "faults[0].trigger.block",
            "thinking = true",
        ),
        ("version = 1\n[[faults]]\ntype = 'stall'\nseconds = -5\n", "faults[0].seconds", ">= 0"),
        ("version = 1\n[[toxics]]\naction = 'add'\n", "toxics[0]", "exactly one of at_s"),
        ("version = 1\n[[toxics]]\naction = 'explode'\nat_s = 1\n", "toxics[0].action", "one of add"),
        ("version = 1\n[client]\nmax_retries = 99\n", "client.max_retries", "between 0 and 15"),
        ("version = 1\n[conversation]\ntool_input = { a = 1 }\n", "conversation.tool_input", "needs tool"),
        ("version = = 1\n", "", "not valid TOML"),
    ],
)
def test_invalid_files_name_the_file_the_key_and_the_fix(tmp_path, text, key, fix):
    error = bad_scenario(tmp_path, text)
    assert error.path == key
    assert fix in error.message


keys = st.sampled_from(
    [
        "version",
        "name",
        "trials",
        "seed",
        "time_scale",
        "transports",
        "tls",
        "conversation",
        "faults",
        "toxics",
        "client",
        "words",
        "turns",
        "turn",
        "type",
        "trigger",
        "select",
        "at",
        "value",
        "action",
        "at_s",
    ]
) | st.text(max_size=5)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 600) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300)
@given(st.dictionaries(keys, values, max_size=8), st.booleans())
def test_arbitrary_documents_never_crash_the_loader(document, versioned):
    if versioned:
        document = {**document, "version": 1}
    document = {k: v for k, v in document.items() if v is not None}
    try:
        item = scenario.from_data(document, "generated.toml")
    except scenario.ScenarioError as error:
        assert error.source == "generated.toml" and error.message
    else:
        assert item.version == 1 and item.turns and item.plan() is not None


valid_turn = st.fixed_dictionaries(
    {},
    optional={
        "words": st.integers(1, 200),
        "thinking": st.booleans(),
        "stream": st.booleans(),
        "idle_before_s": st.floats(0, 100),
        "parallel": st.integers(1, 4),
    },
)
valid_fault = st.sampled_from(
    [
        {"type": "tcp_reset", "trigger": {"at": "events", "value": 3}},
        {"type": "fin", "select": {"attempts": [1]}},
        {"type": "http_error", "status": 529},
        {"type": "stall", "seconds": 2.0, "trigger": {"at": "events", "value": 2}},
        {"type": "tcp_reset", "trigger": {"at": "accept"}, "select": {"connections": [1], "probability": 0.5}},
    ]
)


@given(valid_turn, st.lists(valid_fault, max_size=3), st.floats(0.01, 1.0), st.integers(0, 10_000))
def test_valid_documents_load_and_scale_consistently(turn, faults, scale, seed):
    item = scenario.from_data({"version": 1, "seed": seed, "time_scale": scale, "conversation": turn, "faults": faults}, "gen.toml")
    plan = item.plan()
    for original, scaled in zip(item.faults.rules, plan.rules):
        if original.fault.kind == "stall":
            assert scaled.fault.seconds == pytest.approx(original.fault.seconds * scale)
    for turn_plan, spec in zip(item.client_script()["turns"], item.turns):
        assert turn_plan.get("idle_before_s", 0) == pytest.approx(spec.idle_before_s * scale, abs=1e-6)


# -- every library scenario, run for real -------------------------------------------------------

# openai-python's stream helpers stop reading at [DONE], so over HTTP/1.1 it opens a new connection
# per turn and never meets a pooled connection's eviction; over h2 it reuses the connection.
CLIENT_FOR = {"openai_nat_eviction": "openai-python-h2"}


def client_for(item: scenario.Scenario) -> ClientAdapter:
    if item.name in CLIENT_FOR:
        return registry.get(CLIENT_FOR[item.name])
    sdk = "openai-python" if item.api != "messages" else "python-sdk"  # a chat or responses scenario needs an OpenAI client
    return registry.get(f"{sdk}-h2" if "http/1.1" not in item.transports else sdk)


FAST = {  # run slow scenarios faster still; relative timings are kept by time_scale
    "agentic_nat_eviction": 0.005,
    "stall_forever": 0.01,
    "stall_30s": 0.02,
    "stale_pooled_connection": 0.2,
    "cross_client_cascade": 0.5,
    "large_context_decay": 1.0,
    "openai_stall": 0.005,
}
# Trials per scenario: enough for every rule to fire. Trial keys are fixed (run id "lib"), so the
# keyed draws of probability and doomed selectors give the same decisions on every run.
TRIALS = {"large_context_decay": 5}  # trial 4's first attempt is drawn to fail


def check_clock_rule(index: int, rule, loaded: tuple[float, float], journal: list[dict]) -> None:
    """Reply by reply: selected iff it started before ``until``; fired iff it was still going at the
    clock instant (or started after it); never fired early. ``loaded`` brackets the plan's load."""
    slack = 0.05
    low, high = loaded
    at, until = rule.trigger.value, rule.trigger.until
    requests = [r for r in journal if r["kind"] == "request" and r.get("decision")]
    overlapped = 0
    for request in requests:
        selected = index in request["decision"]["rules"]
        notes = [n for n in request.get("faults", []) if n.get("rule") == index]
        if request["t_headers"] >= high + until + slack:
            assert not selected, request["decision"]
        elif request["t_headers"] < low + until - slack:
            assert selected, request["decision"]
        if not selected:
            continue
        due = max(high + at, request["t_headers"])
        if request["t_end"] > due + slack:  # still going when the clock struck: it must have fired
            overlapped += 1
            assert notes and "not_reached" not in notes[0], (request["end"], notes)
        for note in notes:
            if "t" in note:
                assert note["t"] >= max(low + at, request["t_headers"]) - 0.001, "fired before the clock"
    fired = sum(1 for r in requests for n in r.get("faults", []) if n.get("rule") == index and "t" in n)
    assert fired >= overlapped


# The Python SDK (HTTP/1.1, or h2 where the scenario is h2-only) in each scenario, as measured.
# It never retries once a stream started, retries 5xx/429/529 twice, and its accumulator returns a
# truncated text silently (data_loss). Toxiproxy steps count as faults: a trial they touched and
# the client survived is "recovered", never "clean".
OUTCOMES: dict[str, set[str]] = {
    "agentic_nat_eviction": {"recovered"},
    "cross_client_cascade": {"failed", "recovered"},
    "errors_500_429_retry_after": {"recovered"},
    "fin_mid_body": {"failed"},
    "goaway_graceful_in_flight": {"failed"},
    "goaway_last_stream_zero": {"failed"},
    "large_context_decay": {"failed", "recovered"},
    "network_blip": {"failed", "recovered"},
    "overload_529_burst": {"failed"},
    "overload_sse_error": {"failed"},
    "refused_stream": {"recovered"},
    "reset_mid_thinking": {"failed"},
    "rst_stream_internal_error": {"failed"},
    "silent_truncation": {"data_loss"},
    "slow_sliced_network": {"recovered"},
    "stale_pooled_connection": {"recovered"},
    "stall_30s": {"recovered"},
    "stall_forever": {"failed"},
    "startup_burst": {"recovered"},
    # openai-python (its own retries: 429/503 twice, never once a stream started).
    "openai_errors_429_503_retry_after": {"recovered"},
    "openai_goaway_graceful_in_flight": {"failed"},
    "openai_reset_mid_stream": {"failed"},
    "openai_responses_reset_mid_stream": {"failed"},
    "openai_silent_truncation": {"data_loss"},
    "openai_stall": {"failed"},
    "openai_stream_error_after_200": {"failed"},
    "openai_nat_eviction": {"recovered"},
}
SIMULATED = [p for p in LIBRARY if not scenario.load(p).needs_lab]  # [network] scenarios run in real time: tests/test_lab.py
# Which trials a clock rule or a toxiproxy down window hits depends on how fast the clients
# started and ran: a set of possible outcomes is pinned (the shape's firing is checked above).
TIMING_DEPENDENT = {"cross_client_cascade", "network_blip"}


@pytest.mark.slow
@pytest.mark.parametrize("path", SIMULATED, ids=[p.stem for p in SIMULATED])
def test_library_scenario_runs_and_its_faults_fire_as_specified(tmp_path, path, monkeypatch):
    loads = []  # when the runner loaded the plan: clock triggers count from then
    load_plan = SimulatorProcess.load_plan

    def recording(self, plan):
        before = time.monotonic()
        answer = load_plan(self, plan)
        loads.append((before, time.monotonic()))
        return answer

    monkeypatch.setattr(SimulatorProcess, "load_plan", recording)
    item = scenario.load(path)
    if item.needs_toxiproxy:
        from tests.support import require

        require(Path(__file__).resolve().parent.parent / "tools" / "bin" / "toxiproxy-server", "toxiproxy")
    scale = FAST.get(item.name, item.time_scale)
    # A deadline of at least 30 s of wall time: a client that starts slowly on a busy machine is
    # not "hung" (Python SDK clients took over 6 s to start at a load average of 19).
    item = replace(
        item,
        trials=TRIALS.get(item.name) or (min(item.trials, item.concurrency, 8) if item.concurrency > 1 else 1),
        deadline_s=max(item.deadline_s, 30.0 / scale),
    )
    client = client_for(item)
    config = runner.RunConfig((item,), (client,), results_dir=tmp_path, run_id="lib", time_scale=scale, workers=max(2, min(item.trials, 5)))
    directory = runner.run(config)
    records = runner.load_records(directory)
    assert records and not [r for r in records if r.get("skipped") or r["outcome"] in ("error", "skipped")], [
        (r["outcome"], r.get("skipped"), r.get("error_line")) for r in records
    ]  # the harness ran every trial
    journal = [json.loads(line) for line in (directory / f"journal-{item.name}.jsonl").read_text().splitlines()]
    fired = [(record, note) for record in journal for note in record.get("faults", []) if "not_reached" not in note and "skipped" not in note]
    # The shape fired: every rule, whatever selects it (probability, window, idle, doomed).
    # Trial keys are fixed (run id "lib"), so keyed draws make this deterministic, not lucky.
    # A clock rule fires on the replies in flight at its instant (or starting before `until`):
    # which replies those are depends on how fast the clients started, so it is checked reply by
    # reply against the plan's load time, and must fire whenever a reply overlapped its window.
    scaled = item.plan(scale).rules
    for index, rule in enumerate(item.faults.rules):
        if rule.trigger.at == "clock":
            check_clock_rule(index, scaled[index], loads[-1], journal)
            continue
        assert any(note["rule"] == index for _, note in fired), f"rule {index} ({rule.fault.kind}, {rule.select}) never fired"
    for record, note in fired:
        rule = item.faults.rules[note["rule"]]
        assert note["type"] == rule.fault.kind
        assert note["at"] == rule.trigger.at
        if rule.trigger.at == "events" and rule.trigger.block is None and rule.fault.terminal:
            assert note["events_out"] == int(rule.trigger.value), (note, rule)
        if rule.trigger.at == "events" and rule.trigger.block is not None:
            assert record["events_out"] == note["events_out"]
        if rule.trigger.at in ("accept", "tls"):
            assert record["kind"] == "connection"
        if rule.select.attempts is not None and record["kind"] == "request":
            assert record["decision"]["attempt"] in rule.select.attempts
    # Toxics: every step of the timeline ran, without an error, in every trial.
    for record in records:
        if item.toxics:
            ran = record["extra"].get("toxic_steps")
            assert ran is not None and sorted(step["step"] for step in ran) == list(range(len(item.toxics))), (record["trial"], ran)
            assert not [step for step in ran if step["error"]], ran
    # What the client did: the outcomes this client has in this scenario, pinned.
    outcomes = {r["outcome"] for r in records}
    want = OUTCOMES[item.name]
    assert outcomes <= want if item.name in TIMING_DEPENDENT else outcomes == want, (
        sorted(outcomes),
        [(r["outcome"], r["error_line"]) for r in records],
    )
