"""The harness measured against clients whose behaviour is known exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import scenario
from harness.clients import registry
from harness.drive import runner
from harness.measure import metrics
from harness.present import report
from tests.support import KNOWN, scenario_toml


def write_scenario(tmp_path: Path, name: str, faults: str, trials: int, extra: str = "") -> scenario.Scenario:
    path = tmp_path / f"{name}.toml"
    path.write_text(scenario_toml(name, seed=3, trials=trials, words=60, deltas=30, extra="deadline_s = 20.0\n" + extra, faults=faults))
    return scenario.load(path)


@pytest.fixture(autouse=True)
def known_client_importable(monkeypatch):
    """The known client imports the project: PYTHONPATH for this test only, restored after it."""
    env_path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent) + (os.pathsep + env_path if env_path else ""))


def run_known(tmp_path: Path, mode: str, item: scenario.Scenario, workers: int = 2) -> tuple[list[dict], dict]:
    client = registry.command_client(KNOWN + f" {mode}", name=mode)
    directory = runner.run(runner.RunConfig((item,), (client,), results_dir=tmp_path / "results", run_id="t", workers=workers))
    records = runner.load_records(directory)
    (row,) = metrics.summarize(records)
    return records, row


INDEPENDENT_HALF = """
[[faults]]
type = "tcp_reset"
trigger = { at = "events", value = 10 }
select = { probability = 0.5 }
"""


def test_never_retry_recovers_at_the_analytic_rate(tmp_path):
    item = write_scenario(tmp_path, "half", INDEPENDENT_HALF, trials=40)
    records, row = run_known(tmp_path, "never-retry", item, workers=4)
    assert row["trials"] == 40
    low, high = row["recovery_ci"]
    assert low <= 0.5 <= high  # the analytic recovery of a client that never retries: 1 - p
    assert row["hangs"] == 0 and row["data_loss"] == 0
    assert all(len(r["attempts"][0]) == 1 for r in records)  # the server saw one attempt per trial
    assert row["clear_errors"] == row["trials"] - row["recovered"]
    assert {d["attempt"] for d in row["decay"]} == {1}


def test_fixed_backoff_is_measured_and_independent_faults_give_a_flat_decay(tmp_path):
    item = write_scenario(tmp_path, "half", INDEPENDENT_HALF, trials=40)
    _records, row = run_known(tmp_path, "fixed-retry", item, workers=4)
    backoff = row["backoff_ms"]
    # The client sleeps 300 ms; the server sees that plus noticing the reset and reconnecting,
    # never less. Idle, the median is ~310 ms; the upper bound only catches a measured backoff far
    # from the declared 300 ms, leaving 700 ms for reconnecting on fully busy cores.
    assert backoff["p10"] >= 300 and backoff["p50"] < 1000, backoff
    analytic_success = 1 - 0.5**4
    assert row["recovery_ci"][0] <= analytic_success <= row["recovery_ci"][1]
    for point in row["decay"]:
        if point["tried"] >= 8:  # flat: each attempt recovers with 1 - p (a 99.9 % band: one seed is one draw)
            low, high = metrics.wilson(point["recovered"], point["tried"], z=3.29)
            assert low <= 0.5 <= high, point


def test_partial_answer_with_exit_zero_is_data_loss(tmp_path):
    item = write_scenario(
        tmp_path,
        "trunc",
        """
[[faults]]
type = "truncated_clean"
trigger = { at = "events", value = 12 }
""",
        trials=4,
    )
    records, row = run_known(tmp_path, "partial-ok", item)
    assert row["data_loss"] == 4 and row["recovered"] == 0
    assert all(r["outcome"] == "data_loss" and "truncated" in r["integrity"][0] for r in records)


def test_repeated_text_on_retry_is_flagged_as_duplication(tmp_path):
    item = write_scenario(
        tmp_path,
        "reset1",
        """
[[faults]]
type = "tcp_reset"
trigger = { at = "events", value = 12 }
select = { attempts = [1] }
""",
        trials=3,
    )
    records, row = run_known(tmp_path, "repeat-on-retry", item)
    assert row["duplicated"] == 3 and row["recovered"] == 0
    assert all(r["outcome"] == "duplicated" for r in records)
    assert all(r["bytes_out"] > r["bytes_needed"] for r in records)  # work amplification
    assert row["amplification"] > 1


def test_a_hang_is_killed_at_the_deadline_with_nothing_left_running(tmp_path):
    item = write_scenario(
        tmp_path,
        "stall",
        """
[[faults]]
type = "stall"
seconds = "inf"
trigger = { at = "events", value = 5 }
""",
        trials=2,
        extra="",
    )
    records, row = run_known(tmp_path, "hang", scenario_with_deadline(item, 2.0))
    assert row["hangs"] == 2
    for record in records:
        assert record["hung"] and 2.0 <= record["elapsed_s"] < 6.0
    assert not _processes_running("known_client.py hang")


def scenario_with_deadline(item: scenario.Scenario, seconds: float) -> scenario.Scenario:
    from dataclasses import replace

    return replace(item, deadline_s=seconds)


def _processes_running(fragment: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if fragment in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    return True
            except OSError:
                continue
    return False


def test_results_directory_has_every_output_and_resumes(tmp_path):
    item = write_scenario(tmp_path, "half", INDEPENDENT_HALF, trials=4)
    client = registry.command_client(KNOWN + " never-retry", name="never-retry")
    config = runner.RunConfig((item,), (client,), results_dir=tmp_path / "results", run_id="resume-me", workers=2)
    directory = runner.run(config)
    first = runner.load_records(directory)
    # A crash mid-line and a missing trial: running again redoes only that trial.
    lines = (directory / "trials.jsonl").read_text().splitlines()
    (directory / "trials.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    runner.run(config)
    second = runner.only_latest(runner.load_records(directory))
    assert sorted(r["trial"] for r in second) == [0, 1, 2, 3]
    assert len(runner.load_records(directory)) == 4
    rows = metrics.summarize(second)
    paths = report.write_all(directory, rows, {"run_id": "resume-me"})
    summary = json.loads(paths["json"].read_text())["rows"][0]
    for key in ("scenario", "client", "trials", "recovered", "recovery_rate", "recovery_ci", "hangs", "data_loss", "decay", "backoff_ms"):
        assert key in summary
    assert paths["csv"].read_text().startswith("scenario,client,")
    html = paths["html"].read_text()
    assert "<table class=matrix>" in html and "<svg" in html and (directory / "outcomes.png").exists()
    assert (tmp_path / "results" / "latest").resolve() == directory.resolve()
    assert first[0]["key"].startswith("sc-resume-me-half-never-retry-")
