"""Sequential gates: the error rate with looks after every batch (exact, no simulation), the
decisions on synthetic cells, and `gate --sequential` running real trials with a known client."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import junitparser
import pytest

from harness.present import gate, sequential
from harness.present.sequential import Plan, exact_error, judge_cell, looks_at
from tests.support import CLI, known_client_args, reset_fault, scenario_toml

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


@pytest.mark.parametrize("threshold", [0.5, 0.6, 0.8, 0.9, 0.95])
@pytest.mark.parametrize("max_trials,batch", [(20, 5), (30, 5), (60, 5), (100, 10), (100, 5)])
def test_looking_after_every_batch_keeps_the_stated_error_rate(threshold, max_trials, batch):
    """At a true rate equal to the threshold (the worst case), the chance of ever passing and of
    ever failing over all looks stays within alpha/2 = 2.5 %, the one-sided rate of a 95 % interval."""
    false_pass, false_fail = exact_error(threshold, threshold, max_trials, batch)
    assert false_pass <= 0.025 and false_fail <= 0.025


def test_a_rate_clearly_on_one_side_is_decided_nearly_always():
    assert exact_error(0.95, 0.6, 60, 5)[0] > 0.99
    assert exact_error(0.2, 0.6, 60, 5)[1] > 0.99
    # the price of the correction: 20 trials cannot show >= 80 % at 1 - 0.05/4 (0.8^20 > 0.05/8)
    assert exact_error(1.0, 0.8, 20, 5) == (0.0, 0.0)


def test_without_the_correction_repeated_looks_inflate_the_error():
    naive = max(exact_error(0.6, 0.6, 100, 5, look_alpha=0.05))
    corrected = max(exact_error(0.6, 0.6, 100, 5))
    assert naive > 0.05 > 0.025 >= corrected


def records(outcomes: str, scenario: str = "s", client: str = "c") -> list[dict]:
    """'r' recovered, 'f' failed, 'h' hung, 'd' data loss: one trial each, in order."""
    names = {"r": "recovered", "f": "failed", "h": "hung", "d": "data_loss", "k": "clean"}
    return [
        {
            "scenario": scenario,
            "client": client,
            "trial": i,
            "outcome": names[o],
            "elapsed_s": 1.0,
            "attempts": [],
            "faults_fired": 1,
            "bytes_out": 0,
            "bytes_needed": 0,
        }
        for i, o in enumerate(outcomes)
    ]


LIMITS = gate.Thresholds(min_recovery_lower=0.6)
POLICY = gate.Policy(LIMITS)


def test_a_clear_pass_and_a_clear_fail_stop_early():
    passed = judge_cell("s", "c", records("r" * 60), 60, LIMITS, Plan(batch=5), POLICY)
    assert (passed.state, passed.spent, passed.max_trials) == ("pass", 15, 60)  # 0.6^15 <= 0.05/24
    failed = judge_cell("s", "c", records("f" * 60), 60, LIMITS, Plan(batch=5), POLICY)
    assert (failed.state, failed.spent) == ("fail", 10)
    assert "exact interval" in failed.reasons[0] and "below 60%" in failed.reasons[0]
    hung = judge_cell("s", "c", records("rrrrh" + "r" * 55), 60, LIMITS, Plan(batch=5), POLICY)
    assert (hung.state, hung.spent, hung.reasons) == ("fail", 5, ("1 hang(s) > 0",))


def test_a_cell_near_the_threshold_is_inconclusive_and_counted_by_policy():
    near = records("rf" * 10)  # 50 %, threshold 60 %: neither side is shown at n = 20
    as_fail = judge_cell("s", "c", near, 20, LIMITS, Plan(batch=5, inconclusive="fail"), POLICY)
    as_pass = judge_cell("s", "c", near, 20, LIMITS, Plan(batch=5, inconclusive="pass"), POLICY)
    assert (as_fail.state, as_fail.passed, as_fail.spent) == ("inconclusive", False, 20)
    assert (as_pass.state, as_pass.passed) == ("inconclusive", True)
    xml = sequential.junit_xml([as_fail])
    assert 'type="StreamchaosInconclusive"' in xml and 'name="verdict" value="inconclusive"' in xml
    assert 'name="trials" value="20 of 20"' in xml
    assert "<skipped" in sequential.junit_xml([as_pass])


def test_unrun_trials_leave_the_cell_pending():
    cell = judge_cell("s", "c", records("rfrfr"), 20, LIMITS, Plan(batch=5), POLICY)
    assert (cell.state, cell.spent) == ("pending", 5)
    assert looks_at(23, 5) == [5, 10, 15, 20, 23]


def test_policy_key_and_errors(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('version = 1\n[sequential]\nenabled = true\nbatch = 8\ninconclusive = "pass"\n')
    assert gate.load_policy(policy).defaults == gate.Thresholds()  # the gate's own reader accepts the table
    assert sequential.options(policy, None, False) == Plan(batch=8, inconclusive="pass")
    assert sequential.options(policy, 3, False).batch == 3
    assert sequential.options(None, None, False) is None
    for text, says in (
        ("batch = 0", "sequential.batch: must be a whole number >= 1"),
        ('inconclusive = "maybe"', "sequential.inconclusive: must be one of fail, pass"),
        ("bach = 5", "sequential.bach: unknown key"),
    ):
        policy.write_text(f"version = 1\n[sequential]\nenabled = true\n{text}\n")
        with pytest.raises(gate.PolicyError, match=says):
            sequential.options(policy, None, False)


# -- gate --sequential, end to end -----------------------------------------------------------------------


def scenario(tmp_path: Path, name: str, probability: float | None, trials: int) -> Path:
    fault = "" if probability is None else reset_fault(probability)
    path = tmp_path / f"{name}.toml"
    path.write_text(scenario_toml(name, seed=3, trials=trials, faults=fault))
    return path


def sequential_gate(tmp_path: Path, mode: str, scenario_path: Path, policy_text: str, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    policy = tmp_path / f"policy-{mode}.toml"
    policy.write_text(policy_text)
    command = [
        *CLI,
        "gate",
        "--sequential",
        "--scenarios",
        str(scenario_path),
        *known_client_args(mode, tmp_path / "results", f"seq-{mode}-{scenario_path.stem}"),
        "--policy",
        str(policy),
        "--workers",
        "2",
        *extra,
    ]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300, cwd=ROOT)
    return done, tmp_path / "results" / f"seq-{mode}-{scenario_path.stem}"


POLICY_TEXT = 'version = 1\n[defaults]\nmin_recovery_lower = 0.6\n[sequential]\nbatch = 10\ninconclusive = "fail"\n'


@pytest.mark.slow
def test_sequential_gate_runs_only_the_trials_it_needs(tmp_path):
    clean = scenario(tmp_path, "clean", None, 40)
    done, directory = sequential_gate(tmp_path, "fixed-retry", clean, POLICY_TEXT)
    assert done.returncode == 0, done.stderr
    lines = (directory / "trials.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["trial"] for line in lines) == list(range(10))  # 10 of 40: 0.6^10 <= 0.05/8
    outcome = json.loads((directory / "sequential.json").read_text())
    assert outcome["cells"][0]["verdict"] == "pass" and outcome["cells"][0]["spent"] == 10
    assert "10 of 40" in done.stderr

    broken = scenario(tmp_path, "always", 1.0, 40)
    done, directory = sequential_gate(tmp_path, "never-retry", broken, POLICY_TEXT)
    assert done.returncode == 1
    assert len((directory / "trials.jsonl").read_text().splitlines()) == 10
    (case,) = [c for s in junitparser.JUnitXml.fromfile(str(directory / "junit.xml")) for c in s]
    assert isinstance(case.result[0], junitparser.Failure) and "below 60%" in case.result[0].message


@pytest.mark.slow
def test_inconclusive_cells_count_as_the_policy_says(tmp_path):
    half = scenario(tmp_path, "half", 0.4, 20)
    done, directory = sequential_gate(tmp_path, "never-retry", half, POLICY_TEXT)
    assert done.returncode == 1, done.stderr
    assert len((directory / "trials.jsonl").read_text().splitlines()) == 20  # ran to its maximum
    xml = (directory / "junit.xml").read_text()
    assert 'value="inconclusive"' in xml and "StreamchaosInconclusive" in xml
    assert "INCONCLUSIVE" in done.stderr
    # the same trials judged again, by a policy that lets inconclusive cells through: no trial runs
    lenient = tmp_path / "lenient.toml"
    lenient.write_text(POLICY_TEXT.replace('"fail"', '"pass"'))
    again = subprocess.run(
        [
            *CLI,
            "gate",
            "--sequential",
            "--from",
            str(directory),
            "--policy",
            str(lenient),
            "--junit",
            str(tmp_path / "lenient.xml"),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert again.returncode == 0, again.stderr
    assert "<skipped" in (tmp_path / "lenient.xml").read_text()
