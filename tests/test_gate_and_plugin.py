"""The CI gate (exit code and JUnit XML) and the pytest plugin, end to end."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import junitparser
import pytest

from harness.present import gate
from tests.support import CLI, known_client_args, reset_fault, scenario_toml

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["pytester"]


def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "half.toml"
    path.write_text(scenario_toml("half", seed=5, trials=16, faults=reset_fault(0.5)))
    return path


def run_gate(tmp_path: Path, mode: str, *extra: str) -> tuple[int, Path]:
    policy = tmp_path / "policy.toml"
    policy.write_text("version = 1\n[defaults]\nmin_recovery_lower = 0.6\nmax_hangs = 0\nmax_data_loss = 0\n")
    junit = tmp_path / f"junit-{mode}.xml"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [
        *CLI,
        "gate",
        "--scenarios",
        str(scenario_file(tmp_path)),
        *known_client_args(mode, tmp_path / "results", mode),
        "--policy",
        str(policy),
        "--junit",
        str(junit),
        *extra,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    return done.returncode, junit


def test_gate_fails_a_client_that_never_retries_and_passes_one_that_does(tmp_path):
    bad, bad_junit = run_gate(tmp_path, "never-retry")
    good, good_junit = run_gate(tmp_path, "fixed-retry")
    assert (bad, good) == (1, 0)
    suite = junitparser.JUnitXml.fromfile(str(bad_junit))
    cases = [case for s in suite for case in s]
    assert [(c.classname, c.name) for c in cases] == [("streamchaos.half", "never-retry")]
    (failure,) = cases[0].result
    assert isinstance(failure, junitparser.Failure) and "lower bound below 60%" in failure.message
    passed = [case for s in junitparser.JUnitXml.fromfile(str(good_junit)) for case in s]
    assert passed and all(case.is_passed for case in passed)


def test_gate_judges_existing_results_with_flags(tmp_path):
    status, _ = run_gate(tmp_path, "partial-ok")
    assert status == 1  # data loss: the partial answers printed with exit 0
    again = subprocess.run(
        [
            *CLI,
            "gate",
            "--from",
            str(tmp_path / "results" / "partial-ok"),
            "--max-data-loss",
            "100",
            "--min-recovery",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize(
    "text,key",
    [
        ("version = 1\n[defaults]\nmin_recovery_lower = 2\n", "defaults.min_recovery_lower"),
        ("version = 1\n[defaults]\nmax_hangs = 1.5\n", "defaults.max_hangs"),
        ("version = 1\n[scenarios.x]\nmax_amplificaton = 2\n", "scenarios.x.max_amplificaton"),
        ("versio = 1\n", "versio"),
    ],
)
def test_bad_policies_name_the_key(tmp_path, text, key):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(gate.PolicyError) as error:
        gate.load_policy(path)
    assert error.value.path == key and str(path) in str(error.value)


def test_the_plugin_is_registered_and_its_example_runs(pytester):
    example = (ROOT / "examples" / "test_goaway_example.py").read_text()
    pytester.makepyfile(test_example=example)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1, xfailed=1)
