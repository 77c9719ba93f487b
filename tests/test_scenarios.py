"""Scenario files: the format's validation, and every library scenario run for real."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from harness import runner, scenario
from harness.clients import registry

LIBRARY = scenario.library()


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_scenario_validates_and_documents_itself(path):
    item = scenario.load(path)
    assert item.name == path.stem
    assert item.title and item.shape and item.expect and item.reproduces
    assert item.faults.rules or item.toxics
    plan = item.client_plan()
    assert plan["turns"] and all("@sc " in turn["prompt"] for turn in plan["turns"])


def test_the_library_covers_every_reported_shape():
    kinds = {rule.fault.kind for path in LIBRARY for rule in scenario.load(path).faults.rules}
    assert {"tcp_reset", "fin", "truncated_clean", "idle_eviction", "goaway", "rst_stream", "http_error", "sse_error", "stall"} <= kinds
    actions = {step.action for path in LIBRARY for step in scenario.load(path).toxics}
    assert {"add", "down", "up"} <= actions
    assert len(LIBRARY) >= 12


def bad(tmp_path: Path, text: str) -> scenario.ScenarioError:
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(scenario.ScenarioError) as error:
        scenario.load(path)
    assert str(path) in str(error.value)
    return error.value


@pytest.mark.parametrize("text,key,fix", [
    ("name = 'x'\n", "version", "required"),
    ("version = 2\n", "version", "reads version 1"),
    ("version = 1\nwrods = 3\n", "wrods", "unknown key"),
    ("version = 1\n[conversation]\nwrods = 3\n", "conversation.wrods", "did you mean 'words'"),
    ("version = 1\ntrials = 'ten'\n", "trials", "whole number"),
    ("version = 1\ntime_scale = 0\n", "time_scale", "> 0"),
    ("version = 1\ntransports = ['h3']\n", "transports[0]", "http/1.1, h2"),
    ("version = 1\ntransports = ['http/1.1']\n[[faults]]\ntype = 'rst_stream'\n", "faults[0].type", "needs HTTP/2"),
    ("version = 1\n[conversation]\nwords = 10\n[[faults]]\ntype = 'tcp_reset'\ntrigger = { at = 'events', value = 500 }\n", "faults[0].trigger.value", "at most"),
    ("version = 1\n[[faults]]\ntype = 'tcp_reset'\ntrigger = { at = 'events', value = 3, block = 'thinking' }\n", "faults[0].trigger.block", "thinking = true"),
    ("version = 1\n[[faults]]\ntype = 'stall'\nseconds = -5\n", "faults[0].seconds", ">= 0"),
    ("version = 1\n[[toxics]]\naction = 'add'\n", "toxics[0]", "exactly one of at_s"),
    ("version = 1\n[[toxics]]\naction = 'explode'\nat_s = 1\n", "toxics[0].action", "one of add"),
    ("version = 1\n[client]\nmax_retries = 99\n", "client.max_retries", "between 0 and 15"),
    ("version = 1\n[conversation]\ntool_input = { a = 1 }\n", "conversation.tool_input", "needs tool"),
    ("version = = 1\n", "", "not valid TOML"),
])
def test_invalid_files_name_the_file_the_key_and_the_fix(tmp_path, text, key, fix):
    error = bad(tmp_path, text)
    assert error.path == key
    assert fix in error.message


keys = st.sampled_from(["version", "name", "trials", "seed", "time_scale", "transports", "tls", "conversation", "faults", "toxics",
                        "client", "words", "turns", "turn", "type", "trigger", "select", "at", "value", "action", "at_s"]) | st.text(max_size=5)
values = st.recursive(st.none() | st.booleans() | st.integers(-3, 600) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4), max_leaves=25)


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


valid_turn = st.fixed_dictionaries({}, optional={"words": st.integers(1, 200), "thinking": st.booleans(), "stream": st.booleans(),
                                                 "idle_before_s": st.floats(0, 100), "parallel": st.integers(1, 4)})
valid_fault = st.sampled_from([
    {"type": "tcp_reset", "trigger": {"at": "events", "value": 3}},
    {"type": "fin", "select": {"attempts": [1]}},
    {"type": "http_error", "status": 529},
    {"type": "stall", "seconds": 2.0, "trigger": {"at": "events", "value": 2}},
    {"type": "tcp_reset", "trigger": {"at": "accept"}, "select": {"connections": [1], "probability": 0.5}},
])


@given(valid_turn, st.lists(valid_fault, max_size=3), st.floats(0.01, 1.0), st.integers(0, 10_000))
def test_valid_documents_load_and_scale_consistently(turn, faults, scale, seed):
    item = scenario.from_data({"version": 1, "seed": seed, "time_scale": scale, "conversation": turn, "faults": faults}, "gen.toml")
    plan = item.plan()
    for original, scaled in zip(item.faults.rules, plan.rules):
        if original.fault.kind == "stall":
            assert scaled.fault.seconds == pytest.approx(original.fault.seconds * scale)
    for turn_plan, spec in zip(item.client_plan()["turns"], item.turns):
        assert turn_plan.get("idle_before_s", 0) == pytest.approx(spec.idle_before_s * scale, abs=1e-6)


# -- every library scenario, run for real -------------------------------------------------------

def client_for(item: scenario.Scenario) -> registry.ClientAdapter:
    sdk = "openai-python" if item.api != "messages" else "python-sdk"  # a chat or responses scenario needs an OpenAI client
    return registry.get(f"{sdk}-h2" if "http/1.1" not in item.transports else sdk)


FAST = {  # run slow scenarios faster still; relative timings are kept by time_scale
    "agentic_nat_eviction": 0.005, "stall_forever": 0.005, "stall_30s": 0.02, "stale_pooled_connection": 0.2,
    "cross_client_cascade": 0.5, "large_context_decay": 1.0, "openai_stall": 0.005, "openai_nat_eviction": 0.005,
}


@pytest.mark.slow
@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_scenario_runs_and_its_faults_fire_as_specified(tmp_path, path):
    item = scenario.load(path)
    if item.needs_toxiproxy:
        from tests.support import require

        require(Path(__file__).resolve().parent.parent / "tools" / "bin" / "toxiproxy-server", "toxiproxy")
    item = replace(item, trials=min(item.trials, item.concurrency, 8) if item.concurrency > 1 else 1)
    client = client_for(item)
    config = runner.RunConfig((item,), (client,), results_dir=tmp_path, run_id="lib", time_scale=FAST.get(item.name, item.time_scale))
    directory = runner.run(config)
    records = runner.load_records(directory)
    assert records and not any(r.get("skipped") for r in records), records
    journal = [json.loads(line) for line in (directory / f"journal-{item.name}.jsonl").read_text().splitlines()]
    fired = [(record, note) for record in journal for note in record.get("faults", []) if "not_reached" not in note and "skipped" not in note]
    deterministic = [i for i, rule in enumerate(item.faults.rules)
                     if rule.select.probability == 1 and not rule.select.doomed and rule.select.window_s is None and rule.select.idle_s is None
                     and rule.fault.kind != "idle_eviction" and rule.trigger.at != "clock"]
    for index in deterministic:
        assert any(note["rule"] == index for _, note in fired), f"rule {index} ({item.faults.rules[index].fault.kind}) never fired"
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
