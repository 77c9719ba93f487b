"""The library's OpenAI shapes run for the OpenAI clients through the ordinary runner, and the
reference strategies through ``compare`` against a Chat Completions stream.

One trial per (scenario, client): each record says the fault fired (the journal beside the results
shows it on the first attempt) and what the client did about it. These are the measurements the
README's "OpenAI-compatible APIs" table reports.
"""

from __future__ import annotations

import json

import pytest

from harness import cli, scenario
from harness.clients import registry
from harness.drive import runner

pytestmark = [pytest.mark.clients, pytest.mark.slow]

CLIENTS = ("openai-python", "openai-python-h2", "openai-node", "ai-sdk-node")
SCENARIOS = (
    "openai_reset_mid_stream",
    "openai_responses_reset_mid_stream",
    "openai_errors_429_503_retry_after",
    "openai_stream_error_after_200",
    "openai_silent_truncation",
    "openai_stall",
    "openai_goaway_graceful_in_flight",
    "openai_nat_eviction",
)
FAULT_END = {
    "openai_reset_mid_stream": "fault:tcp_reset",
    "openai_responses_reset_mid_stream": "fault:tcp_reset",
    "openai_stream_error_after_200": "fault:sse_error",
    "openai_silent_truncation": "fault:truncated_clean",
    "openai_stall": "fault:stall",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    for name in CLIENTS:
        installed, why = registry.get(name).installed()
        assert installed, why
    directory = tmp_path_factory.mktemp("openai-run")
    clients = tuple(registry.get(name) for name in CLIENTS)
    # the stall runs at half its own time scale (a 600 s timeout as 3 s); the rest at theirs (the NAT
    # shape needs its timeout then a retry to fit in the deadline)
    slow = ("openai_stall",)
    for names, time_scale in ((tuple(n for n in SCENARIOS if n not in slow), None), (slow, 0.005)):
        config = runner.RunConfig(
            tuple(scenario.load(scenario.find(name)) for name in names),
            clients,
            results_dir=directory,
            run_id="oa",
            trials=1,
            workers=2,
            time_scale=time_scale,
        )
        out = runner.run(config)
    records = {(r["scenario"], r["client"]): r for r in runner.load_records(out)}
    return out, records


def test_every_shape_ran_for_every_client_that_speaks_it_and_its_fault_fired(results):
    out, records = results
    for name in SCENARIOS:
        for client in CLIENTS:
            record = records[(name, client)]
            if name == "openai_goaway_graceful_in_flight" and client != "openai-python-h2":
                assert record["outcome"] == "skipped" and "the scenario needs h2" in record["skipped"]
                continue
            if name == "openai_nat_eviction" and client == "openai-python":
                continue  # measured below: it never reuses the connection, so nothing fires
            assert record["faults_fired"] >= 1, (name, client, record)
            assert any(a["faults"] for group in record["attempts"] for a in group), (name, client, record["attempts"])
            first = record["attempts"][0][0]
            if name in FAULT_END:
                assert first["end"] == FAULT_END[name] and first["status"] == 200, (name, client, first)
        journal = [json.loads(line) for line in (out / f"journal-{name}.jsonl").read_text().splitlines()]
        requests = [r for r in journal if r["kind"] == "request"]
        path = "/v1/responses" if "responses" in name else "/v1/chat/completions"
        assert requests and {r["path"] for r in requests} == {path}
        assert any(f for r in requests for f in r["faults"] if "not_reached" not in f)


def outcome(records, name, client) -> tuple[str, str]:
    record = records[(name, client)]
    return record["outcome"], record["error_line"] or ""


def test_no_client_retries_a_stream_that_started(results):
    _, records = results
    for name in ("openai_reset_mid_stream", "openai_stream_error_after_200"):
        for client in ("openai-python", "openai-node", "ai-sdk-node"):
            assert outcome(records, name, client)[0] == "failed", (name, client, records[(name, client)])
    assert outcome(records, "openai_reset_mid_stream", "openai-python")[1].startswith("APIConnectionError: Connection error.")
    assert "terminated" in outcome(records, "openai_reset_mid_stream", "openai-node")[1]
    assert outcome(records, "openai_reset_mid_stream", "ai-sdk-node")[1].startswith("AI_APICallError: Failed to process successful response")
    assert outcome(records, "openai_stream_error_after_200", "openai-python")[1] == "APIError: Overloaded"
    assert outcome(records, "openai_stream_error_after_200", "ai-sdk-node")[1].startswith("AI_StreamProviderError: Overloaded")


def test_status_errors_are_retried_and_retry_after_ms_is_honoured(results):
    _, records = results
    for client in CLIENTS:
        record = records[("openai_errors_429_503_retry_after", client)]
        assert record["outcome"] == "recovered", record
        (attempts,) = record["attempts"]
        assert [a["status"] for a in attempts] == [503, 429, 200]
        assert record["backoff_ms"][1] >= 1400, (client, record["backoff_ms"])  # retry-after-ms: 1500


def test_a_clean_end_without_done_is_data_loss_except_in_openai_node(results):
    _, records = results
    assert outcome(records, "openai_silent_truncation", "openai-python")[0] == "data_loss"
    assert outcome(records, "openai_silent_truncation", "ai-sdk-node")[0] == "data_loss"
    state, line = outcome(records, "openai_silent_truncation", "openai-node")
    assert state == "failed" and "missing finish_reason for choice 0" in line


def test_stall_hangs_openai_node_whose_timeout_does_not_cover_the_body(results):
    _, records = results
    assert outcome(records, "openai_stall", "openai-node")[0] == "hung"
    assert outcome(records, "openai_stall", "openai-python")[1].startswith("APITimeoutError: Request timed out.")
    assert outcome(records, "openai_stall", "ai-sdk-node")[0] == "failed"


def test_graceful_goaway_and_nat_eviction(results):
    _, records = results
    state, line = outcome(records, "openai_goaway_graceful_in_flight", "openai-python-h2")
    assert state == "failed" and "ConnectionTerminated error_code:0" in line
    for client in ("openai-python-h2", "openai-node"):
        assert outcome(records, "openai_nat_eviction", client)[0] == "recovered"
    # the AI SDK's timeout.firstChunkMs and chunkMs start once the response headers are in: a request
    # black-holed before them waits forever
    assert outcome(records, "openai_nat_eviction", "ai-sdk-node")[0] == "hung"
    # openai-python on HTTP/1.1 closes the connection after each stream (it stops reading at [DONE]),
    # so the second turn goes out on a new connection that no NAT has forgotten
    record = records[("openai_nat_eviction", "openai-python")]
    assert record["outcome"] == "clean" and len({a[0]["conn"] for a in record["attempts"]}) == 2


def test_compare_runs_the_reference_strategies_against_a_chat_stream(tmp_path, capsys):
    code = cli.main(
        [
            "compare",
            "--strategies",
            "none",
            "full-jitter",
            "--scenarios",
            "openai_reset_mid_stream",
            "--trials",
            "2",
            "--results",
            str(tmp_path),
            "--run-id",
            "cmp",
            "--workers",
            "2",
        ]
    )
    assert code == 0
    directory = tmp_path / "cmp"
    rows = {row["strategy"]: row for row in json.loads((directory / "compare.json").read_text())["rows"]}
    assert rows["none"]["recovered"] == 0 and rows["full-jitter"]["recovered"] == 2 and rows["full-jitter"]["data_loss"] == 0
    journal = [json.loads(line) for line in (directory / "journal-openai_reset_mid_stream.jsonl").read_text().splitlines()]
    assert {r["path"] for r in journal if r["kind"] == "request"} == {"/v1/chat/completions"}
    assert "openai_reset_mid_stream" in capsys.readouterr().out


def test_ai_sdk_stream_retries_recover_an_error_event_but_not_a_reset(tmp_path):
    config = runner.RunConfig(
        (scenario.load(scenario.find("openai_stream_error_after_200")), scenario.load(scenario.find("openai_reset_mid_stream"))),
        (registry.get("ai-sdk-node-stream-retries"),),
        results_dir=tmp_path,
        run_id="sr",
        trials=1,
        workers=2,
    )
    records = {r["scenario"]: r for r in runner.load_records(runner.run(config))}
    retried = records["openai_stream_error_after_200"]
    assert retried["outcome"] == "recovered" and retried["integrity"] == []  # the whole answer, once
    assert [a["end"] for a in retried["attempts"][0]] == ["fault:sse_error", "complete"]
    reset = records["openai_reset_mid_stream"]
    assert reset["outcome"] == "failed" and [a["end"] for a in reset["attempts"][0]] == ["fault:tcp_reset"]


def test_report_and_gate_treat_the_openai_clients_like_any_other(results, tmp_path):
    out, _ = results
    junit = tmp_path / "junit.xml"
    code = cli.main(["gate", "--from", str(out), "--junit", str(junit), "--min-recovery", "0.5"])
    assert code != 0  # no OpenAI client recovers a mid-stream reset
    xml = junit.read_text()
    for client in CLIENTS:
        assert f'classname="streamchaos.openai_reset_mid_stream" name="{client}"' in xml
    assert 'classname="streamchaos.openai_errors_429_503_retry_after" name="openai-node"' in xml
    summary = json.loads((out / "summary.json").read_text())
    rows = {(row["scenario"], row["client"]) for row in summary["rows"]}
    assert {("openai_reset_mid_stream", client) for client in CLIENTS} <= rows
    assert all(client in (out / "report.html").read_text() for client in CLIENTS)
