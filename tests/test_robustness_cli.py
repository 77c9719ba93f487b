"""Issue 11, harness half: every number and path a user gives is checked before anything runs.

Each bad input is a usage error (exit 2) with a message naming the option, or the file and key,
and what is wrong; never a traceback, a ZeroDivisionError or an OverflowError in every trial.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path

import pytest

from harness import cli, limits, scenario
from harness.clients import registry
from harness.drive import runner
from simulator.faults.model import FaultPlan, PlanError
from tests.support import bad_scenario

ROOT = Path(__file__).resolve().parent.parent


def usage_error(capsys, argv: list[str]) -> str:
    """Run the CLI in-process; it must refuse with exit 2; its stderr."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf", "1e300", "1e-9"])
@pytest.mark.parametrize("command", ["run", "gate", "compare"])
def test_time_scale_must_be_finite_and_in_range(capsys, command, value):
    extra = ["--scenarios", "network_blip"] if command == "compare" else []
    err = usage_error(capsys, [command, *extra, f"--time-scale={value}"])
    assert "--time-scale" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "option,value",
    [
        ("--trials", "0"),
        ("--trials", "-1"),
        ("--trials", "1000000000000"),
        ("--trials", "2.5"),
        ("--max-trials", "0"),
        ("--max-trials", "-2"),
        ("--max-trials", str(limits.MAX_TRIALS + 1)),
        ("--workers", "0"),
        ("--workers", "-3"),
    ],
)
def test_counts_must_be_positive_and_bounded(capsys, option, value):
    err = usage_error(capsys, ["run", f"{option}={value}"])
    assert option in err and ("between" in err or "whole number" in err)


@pytest.mark.parametrize("option", ["--clients", "--scenarios"])
def test_a_list_option_with_no_names_is_an_error_not_all(capsys, option):
    err = usage_error(capsys, ["run", option, "--trials", "1"])
    assert option in err and "at least one" in err


@pytest.mark.parametrize("run_id", ["../escaped", "/tmp/absolute", "a/b", ".", "..", ".hidden", ""])
def test_run_id_stays_inside_results(capsys, tmp_path, run_id):
    err = usage_error(capsys, ["run", "--results", str(tmp_path / "results"), "--run-id", run_id])
    assert "--run-id" in err
    assert not (tmp_path / "escaped").exists()


def test_runner_refuses_a_run_id_outside_results_and_bad_numbers(tmp_path):
    item = scenario.load(scenario.find("network_blip"))
    client = registry.command_client("true", name="true")
    for run_id in ("../escaped", str(tmp_path / "abs")):
        with pytest.raises(ValueError, match="run-id"):
            runner.run(runner.RunConfig((item,), (client,), results_dir=tmp_path / "results", run_id=run_id))
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "abs").exists()
    for bad in ({"trials": 0}, {"trials": -1}, {"max_trials": 0}, {"workers": 0}, {"time_scale": 0.0}, {"time_scale": float("nan")}):
        with pytest.raises(ValueError):
            runner.run(runner.RunConfig((item,), (client,), results_dir=tmp_path / "results", run_id="x", **bad))


def test_a_directory_is_not_a_scenario(capsys, tmp_path):
    with pytest.raises(scenario.ScenarioError, match="is a directory"):
        scenario.load(tmp_path)
    assert cli.main(["scenarios", "validate", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err
    assert cli.main(["run", "--scenarios", str(tmp_path), "--client-cmd", "true", "--results", str(tmp_path / "r")]) == 2
    assert "is a directory" in " ".join(capsys.readouterr().err.split())  # rich wraps lines


# -- scenario files ----------------------------------------------------------------------------


SLOW = """
[[faults]]
type = "slow"
tokens_per_second = 50.0
"""


@pytest.mark.parametrize(
    "text,key",
    [
        ("deadline_s = 1e300\n", "deadline_s"),
        ("deadline_s = inf\n", "deadline_s"),
        ("time_scale = 1e300\n", "time_scale"),
        ("time_scale = nan\n", "time_scale"),
        ("time_scale = 0.0\n", "time_scale"),
        ("trials = 1000000000000\n", "trials"),
        ("concurrency = 1000000000\n", "concurrency"),
        ("[client]\ntimeout_s = 1e300\n", "client.timeout_s"),
        ("[conversation]\nidle_before_s = 1e300\n", "conversation.idle_before_s"),
        ("[conversation]\nturns = 1001\n", "conversation.turns"),
        ("[conversation]\nturns = 1000000000\n", "conversation.turns"),
        ("[conversation]\nwords = 1000000000000\n", "conversation.words"),
        ("[conversation]\nmax_tokens = 1000000000000\n", "conversation.max_tokens"),
        ("[conversation]\nturns = 1000\ncontext_kb = 32768\n", "conversation.context_kb"),
        ("[conversation]\nturns = 2\ncontext_kb = 20000\n", "conversation.context_kb"),
        ('[[faults]]\ntype = "tcp_reset"\ntrigger = { at = "ms", value = inf }\n', "faults[0].trigger.value"),
        ('[[faults]]\ntype = "tcp_reset"\ntrigger = { at = "events", value = inf }\n', "faults[0].trigger.value"),
        ('[[faults]]\ntype = "tcp_reset"\ntrigger = { at = "events", value = 1e300 }\n', "faults[0].trigger.value"),
        ('[[faults]]\ntype = "tcp_reset"\nselect = { window_s = [nan, nan] }\n', "faults[0].select.window_s"),
        ('[[faults]]\ntype = "tcp_reset"\nselect = { window_s = [0.0, inf] }\n', "faults[0].select.window_s"),
        ('[[faults]]\ntype = "stall"\nseconds = 1e300\n', "faults[0].seconds"),
        ('[[faults]]\ntype = "stall"\nseconds = nan\n', "faults[0].seconds"),
        ('[[faults]]\ntype = "goaway"\ngrace_s = "inf"\n', "faults[0].grace_s"),
        ('[[faults]]\ntype = "slow"\ntokens_per_second = inf\n', "faults[0].tokens_per_second"),
        ('[[faults]]\ntype = "http_error"\nretry_after = 1e300\n', "faults[0].retry_after"),
        ('[[faults]]\ntype = "idle_eviction"\nidle_s = 200000.0\n', "faults[0].idle_s"),
        ('[[toxics]]\naction = "down"\nat_s = 1e300\n', "toxics[0].at_s"),
        ('[[toxics]]\naction = "down"\non = "first_answer_complete"\ndelay_s = inf\n', "toxics[0].delay_s"),
    ],
)
def test_scenario_numbers_are_finite_and_bounded(tmp_path, text, key):
    started = time.monotonic()
    error = bad_scenario(tmp_path, "version = 1\n" + text)
    assert error.path == key, error
    assert time.monotonic() - started < 5, "validation must not grow with the numbers it refuses"


def test_stall_forever_is_still_allowed(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text('version = 1\n[[faults]]\ntype = "stall"\nseconds = "inf"\ntrigger = { at = "events", value = 5 }\n')
    assert scenario.load(path).faults.rules[0].fault.terminal


def test_a_huge_file_is_refused_before_parsing(tmp_path):
    error = bad_scenario(tmp_path, "version = 1\n# " + "x" * limits.MAX_FILE_BYTES + "\n")
    assert "KiB" in error.message


def test_time_scale_zero_with_a_slow_fault_is_an_error_not_a_zero_division(tmp_path):
    path = tmp_path / "slow.toml"
    path.write_text("version = 1\n" + SLOW)
    item = scenario.load(path)
    for factor in (0, 0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(PlanError, match="time_scale"):
            item.plan(factor)


@pytest.mark.parametrize(
    "rule",
    [
        {"type": "tcp_reset", "trigger": {"at": "events", "value": float("inf")}},
        {"type": "tcp_reset", "trigger": {"at": "events", "value": "inf"}},
        {"type": "tcp_reset", "trigger": {"at": "ms", "value": 1e300}},
        {"type": "tcp_reset", "select": {"window_s": [float("nan"), float("nan")]}},
        {"type": "goaway", "grace_s": float("inf")},
        {"type": "malformed_sse", "mode": "split", "gap_s": "forever"},
    ],
)
def test_fault_plans_refuse_non_finite_numbers(rule):
    with pytest.raises(PlanError):
        FaultPlan.from_data({"faults": [rule]})


def test_the_control_api_refuses_an_infinite_trigger_with_a_clear_error(start_simulator):
    simulator = start_simulator()
    body = json.dumps({"faults": [{"type": "tcp_reset", "trigger": {"at": "events", "value": 1e400}}]}).replace("1e400", "Infinity")
    assert "Infinity" in body
    request = urllib.request.Request(f"{simulator.control_url}/plan", data=body.encode(), method="PUT", headers={"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 400
    assert "faults[0].trigger.value" in json.load(answer.value)["error"]
    with urllib.request.urlopen(f"{simulator.control_url}/journal?key=nobody", timeout=10) as still:
        assert still.status == 200  # and the simulator serves on


def test_trials_are_generated_lazily(tmp_path, monkeypatch):
    """A million trials cost no memory up front: the runner submits as workers free up."""

    class Enough(Exception):
        pass

    item = scenario.load(scenario.find("network_blip"))
    from dataclasses import replace

    item = replace(item, toxics=(), trials=1)
    client = registry.command_client("true", name="true", output="text")
    seen: list[int] = []

    def stop_soon(progress: runner.Progress, record) -> None:
        seen.append(progress.total)
        if progress.done >= 2:
            raise Enough

    monkeypatch.setattr(limits, "MAX_TRIALS", 10**6)
    config = runner.RunConfig((item,), (client,), results_dir=tmp_path, run_id="lazy", trials=10**6, workers=2, time_scale=0.01)
    tracemalloc.start()
    try:
        with pytest.raises(Enough):
            runner.run(config, runner.Progress(on_update=stop_soon))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen[0] == 10**6
    assert peak < 40 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"
    assert len(runner.load_records(tmp_path / "lazy")) == 2


# -- serve --------------------------------------------------------------------------------------


def serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "serve", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    "args,words",
    [
        (["--port", "-1"], "--port"),
        (["--port", "99999"], "--port"),
        (["--control-port", "70000"], "--control-port"),
        (["--host", "8.8.8.8"], "cannot listen on 8.8.8.8"),
        (["--journal", "/nonexistent/x"], "/nonexistent"),
        (["--scenario", "DIR"], "is a directory"),
        (["--journal", "DIR"], "is a directory"),
    ],
)
def test_serve_refuses_bad_options_without_a_traceback(tmp_path, args, words):
    args = [str(tmp_path) if a == "DIR" else a for a in args]
    result = serve(tmp_path, *args)
    assert result.returncode == 2, result
    assert words in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not result.stdout.strip()  # no ready line: it did not listen anywhere


# -- children's output is drained ----------------------------------------------------------------


def test_a_simulator_that_writes_a_lot_to_stderr_does_not_block(monkeypatch):
    """PYTHONVERBOSE makes the simulator write ~180 KB to stderr: with a pipe nobody reads it
    would block once 64 KiB fill it."""
    from harness.drive import simulator_process

    monkeypatch.setattr(simulator_process, "READY_TIMEOUT_S", 20.0)
    env = {**os.environ, "PYTHONVERBOSE": "1"}
    with simulator_process.SimulatorProcess(["--seed", "1"], env=env) as simulator:
        for _ in range(3):
            with urllib.request.urlopen(f"{simulator.control_url}/journal?key=nobody", timeout=10) as answer:
                assert answer.status == 200
        assert len(simulator.stderr_tail()) > 1000
    assert simulator.process.returncode is not None


def test_serve_stops_gracefully_on_sighup(start_simulator):
    import signal

    simulator = start_simulator()
    os.kill(simulator.process.pid, signal.SIGHUP)
    assert simulator.process.wait(15) == 0  # the same graceful stop as SIGTERM, not death by SIGHUP
