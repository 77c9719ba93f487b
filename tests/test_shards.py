"""Shards and merge: a deterministic, cost-balanced slice of the grid; four shards run as parallel
processes and merged equal one unsharded run trial for trial; bad sets of shards are named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness.clients import registry
from harness.drive import shards
from harness.drive.runner import RunConfig
from harness.scenario import from_data, library, load
from tests.support import CLI, KNOWN, reset_fault, scenario_toml

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT))

HALF = scenario_toml("half", seed=5, trials=12, faults=reset_fault(0.5))
DOOMED = scenario_toml(
    "doomed",
    seed=11,
    trials=10,
    words=30,
    deltas=15,
    faults="""
    [[faults]]
    type = "fin"
    trigger = { at = "events", value = 5 }
    select = { doomed = 0.6, doomed_probability = 0.7 }
""",
)


def scenario_files(tmp_path: Path) -> list[str]:
    paths = []
    for text in (HALF, DOOMED):
        data = textwrap.dedent(text)
        path = tmp_path / (data.split('name = "')[1].split('"')[0] + ".toml")
        path.write_text(data)
        paths.append(str(path))
    return paths


def streamchaos(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env or ENV, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def run_args(tmp_path: Path, results: Path, *extra: str) -> list[str]:
    return [
        *CLI,
        "run",
        "--scenarios",
        *scenario_files(tmp_path),
        "--client-cmd",
        f"{KNOWN} fixed-retry",
        "--client-name",
        "fixed",
        "--clients",
        "curl",
        "--results",
        str(results),
        "--run-id",
        "same-seed",
        "--workers",
        "2",
        *extra,
    ]


def decisions(path: Path) -> dict:
    """Per trial: its outcome, answers intact, and the faults each attempt of each request met."""
    out = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        faults = [[tuple(a["faults"]) for a in request] for request in record["attempts"]]
        out[(record["scenario"], record["client"], record["trial"])] = (record["outcome"], record["answers_intact"], faults, record["key"])
    return out


# -- the slice ----------------------------------------------------------------------------------------


def library_config(**overrides) -> RunConfig:
    scenarios = tuple(load(path) for path in library())
    clients = tuple(registry.get(name) for name in ("python-sdk", "ts-sdk-node", "go-sdk", "curl", "claude-code"))
    return RunConfig(scenarios=scenarios, clients=clients, **overrides)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_shards_partition_the_grid_and_balance_expected_cost(count):
    config = library_config()
    slices = [shards.select(config, shards.Shard(i, count)) for i in range(1, count + 1)]
    grid = {(s.name, c.name, i) for s in config.scenarios for c in config.clients for i in range(s.trials)}
    assert set().union(*slices) == grid
    assert sum(len(s) for s in slices) == len(grid)  # disjoint
    loads = [shards.planned_load(config, shards.Shard(i, count)) for i in range(1, count + 1)]
    biggest_unit = max(u.cost for u in shards.grid_units(config.scenarios, config.clients, lambda s: s.trials))
    assert max(loads) - min(loads) <= biggest_unit + 1e-6  # LPT: within one unit of each other
    # a scenario whose trials share server state stays whole on one shard
    cascade = [n for n, s in enumerate(slices) if any(t[0] == "cross_client_cascade" for t in s)]
    assert len(cascade) == 1


def test_the_slice_depends_on_the_configuration_only():
    forward, backward = library_config(), library_config()
    backward = RunConfig(scenarios=tuple(reversed(backward.scenarios)), clients=backward.clients)
    for index in range(1, 5):
        assert shards.select(forward, shards.Shard(index, 4)) == shards.select(backward, shards.Shard(index, 4))
    assert shards.config_digest(forward) != shards.config_digest(library_config(max_trials=3))


def test_shard_specifications_and_engine_variables():
    assert shards.parse("2/4") == shards.Shard(2, 4)
    for bad, says in (("0/4", "numbered 1..4"), ("5/4", "out of range"), ("2", "INDEX/COUNT"), ("1/0", "at least 1")):
        with pytest.raises(shards.ShardError, match=says):
            shards.parse(bad)
    assert shards.from_env({"JOB_COMPLETION_INDEX": "0", "STREAMCHAOS_SHARD_COUNT": "4"}) == shards.Shard(1, 4)
    assert shards.from_env({"JOB_COMPLETION_INDEX": "3"}, count=4) == shards.Shard(4, 4)
    assert shards.from_env({"STREAMCHAOS_SHARD": "3/5", "JOB_COMPLETION_INDEX": "0"}) == shards.Shard(3, 5)
    with pytest.raises(shards.ShardError, match="shard count is not"):
        shards.from_env({"JOB_COMPLETION_INDEX": "2"})
    with pytest.raises(shards.ShardError, match="out of range"):
        shards.from_env({"JOB_COMPLETION_INDEX": "4", "STREAMCHAOS_SHARD_COUNT": "4"})
    with pytest.raises(shards.ShardError, match="neither"):
        shards.from_env({})


def test_expected_cost_follows_the_scenario_not_the_machine():
    stall = load(ROOT / "scenarios" / "stall_forever.toml")
    quick = from_data({"version": 1, "name": "quick", "transports": ["http/1.1"], "tls": False}, "quick")
    assert shards.expected_cost(stall, "go-sdk") > 5 * shards.expected_cost(quick, "go-sdk")
    assert shards.expected_cost(quick, "claude-code") > shards.expected_cost(quick, "go-sdk")
    assert shards.expected_cost(stall, "go-sdk") <= stall.deadline()


# -- four parallel shards against one run ---------------------------------------------------------------


@pytest.fixture(scope="module")
def four_shards(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("shards")
    shared = tmp_path / "shards"
    processes = [
        subprocess.Popen(
            run_args(tmp_path, shared, "--shard", f"{i}/4"),
            env=dict(ENV, GITHUB_STEP_SUMMARY=str(tmp_path / f"summary-{i}.md")),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(1, 5)
    ]
    try:
        errors = [p.communicate(timeout=300)[1] for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    whole = subprocess.run(run_args(tmp_path, tmp_path / "whole"), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    dirs = [shared / f"shard-{i}-of-4" / "same-seed" for i in range(1, 5)]
    return tmp_path, dirs, tmp_path / "whole" / "same-seed"


@pytest.mark.slow
def test_four_parallel_shards_merged_equal_one_unsharded_run(four_shards):
    tmp_path, dirs, whole = four_shards
    out = tmp_path / "merged"
    done = streamchaos("merge", *map(str, dirs), "--out", str(out))
    assert done.returncode == 0, done.stderr
    merged, single = decisions(out / "trials.jsonl"), decisions(whole / "trials.jsonl")
    assert len(single) == (12 + 10) * 2
    assert merged == single  # same keys, fault decisions per attempt, outcomes
    assert any(f for _, _, faults, _ in single.values() for request in faults for f in request)  # faults did fire
    assert any(len(request) > 1 for _, _, faults, _ in single.values() for request in faults)  # and retries met fresh draws
    # every shard ran only its slice, and the slices differ
    per_shard = [decisions(d / "trials.jsonl") for d in dirs]
    assert all(per_shard) and sum(len(p) for p in per_shard) == len(single)
    manifest = json.loads((dirs[2] / "manifest.json").read_text())
    assert manifest["shard"] == {"index": 3, "count": 4} and manifest["run_id"] == "same-seed"
    assert manifest["client_versions"]["curl"].startswith("curl ") and manifest["streamchaos_version"]
    assert manifest["config_digest"] == json.loads((whole / "manifest.json").read_text())["config_digest"]
    # the merged directory is a whole results directory
    for name in ("summary.json", "summary.csv", "report.html", "junit.xml", "journal-half.jsonl", "manifest.json"):
        assert (out / name).exists(), name
    rows = {(r["scenario"], r["client"]): r for r in json.loads((out / "summary.json").read_text())["rows"]}
    single_rows = {(r["scenario"], r["client"]): r for r in json.loads((whole / "summary.json").read_text())["rows"]}
    assert {k: (r["trials"], r["recovered"], r["faulted"]) for k, r in rows.items()} == {
        k: (r["trials"], r["recovered"], r["faulted"]) for k, r in single_rows.items()
    }
    journal_keys = {json.loads(line).get("key") for line in (out / "journal-half.jsonl").read_text().splitlines()}
    assert {k for (s, _, _), (_, _, _, k) in single.items() if s == "half"} <= journal_keys
    # gate --from and report work on the merge
    policy = tmp_path / "policy.toml"
    policy.write_text("version = 1\n[defaults]\nmin_recovery_lower = 0.0\nmax_hangs = 0\nmax_data_loss = 0\n")
    summary = tmp_path / "gate-summary.md"
    gate = streamchaos(
        "gate", "--from", str(out), "--policy", str(policy), "--junit", str(tmp_path / "gate.xml"), env=dict(ENV, GITHUB_STEP_SUMMARY=str(summary))
    )
    assert gate.returncode == 0, gate.stderr
    assert "### streamchaos gate" in summary.read_text() and "| doomed | fixed | ✅ pass | 10 |" in summary.read_text()
    assert "merged from 4 shards" in summary.read_text()
    assert "streamchaos.doomed" in (tmp_path / "gate.xml").read_text()
    assert streamchaos("report", str(out)).returncode == 0


@pytest.mark.slow
def test_each_shard_appends_a_job_summary(four_shards):
    tmp_path, _, _ = four_shards
    text = (tmp_path / "summary-2.md").read_text()
    assert text.startswith("### streamchaos run") and "shard 2/4" in text and "run `same-seed`" in text
    assert "| scenario | client | trials | recovered | rate [95% CI] | hangs | data loss |" in text


@pytest.mark.slow
def test_a_missing_shard_and_a_shard_run_twice_are_named(four_shards, tmp_path):
    _, dirs, _ = four_shards
    missing = streamchaos("merge", str(dirs[0]), str(dirs[1]), str(dirs[3]), "--out", str(tmp_path / "a"))
    assert missing.returncode == 2
    assert "missing shard 3/4 (given: 1/4, 2/4, 4/4)" in missing.stderr
    again = tmp_path / "rerun" / "same-seed"
    shutil.copytree(dirs[1], again)
    twice = streamchaos("merge", *map(str, dirs), str(again), "--out", str(tmp_path / "b"))
    assert twice.returncode == 2
    assert f"shard 2/4 given 2 times (run twice?): {dirs[1]}, {again}" in twice.stderr
    assert not (tmp_path / "a" / "trials.jsonl").exists() and not (tmp_path / "b" / "trials.jsonl").exists()


@pytest.mark.slow
def test_overlapping_incomplete_and_mixed_shards_are_refused(four_shards, tmp_path):
    tmp, dirs, _whole = four_shards
    copies = []
    for d in dirs:
        copies.append(tmp_path / d.parent.name)
        shutil.copytree(d, copies[-1])
    stolen = (copies[0] / "trials.jsonl").read_text().splitlines()[0]
    with open(copies[1] / "trials.jsonl", "a") as handle:
        handle.write(stolen + "\n")
    lines = (copies[2] / "trials.jsonl").read_text().splitlines()
    (copies[2] / "trials.jsonl").write_text("\n".join(lines[1:]) + "\n")
    done = streamchaos("merge", *map(str, copies), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert f"shard 2/4 ({copies[1]}) recorded 1 trial(s) it was not assigned" in done.stderr
    assert f"overlapping shards: shard 1/4 ({copies[0]}) and shard 2/4 ({copies[1]}) both hold 1 trial(s)" in done.stderr
    assert f"shard 3/4 ({copies[2]}) is incomplete: 1 of {len(lines)} assigned trials not recorded" in done.stderr
    # a shard of another configuration (another trial count) is refused before anything else
    other = tmp_path / "other"
    run = subprocess.run(run_args(tmp, other, "--shard", "4/4", "--trials", "2"), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    mixed = streamchaos("merge", *map(str, dirs[:3]), str(other / "shard-4-of-4" / "same-seed"), "--out", str(tmp_path / "out2"))
    assert mixed.returncode == 2 and "mixed configurations (digest)" in mixed.stderr and "shard 4/4" in mixed.stderr


@pytest.mark.slow
def test_merge_appends_a_job_summary(four_shards, tmp_path):
    _, dirs, _ = four_shards
    summary = tmp_path / "step-summary.md"
    summary.write_text("# earlier step\n")
    done = streamchaos("merge", *map(str, dirs), "--out", str(tmp_path / "m"), env=dict(ENV, GITHUB_STEP_SUMMARY=str(summary)))
    assert done.returncode == 0, done.stderr
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "### streamchaos merge (4 shards)" in text
    assert "| scenario | client | trials | recovered |" in text and "| half | fixed | 12 |" in text


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(derandomize=True, max_examples=200)
@given(st.lists(st.floats(min_value=0.01, max_value=50, allow_nan=False), min_size=1, max_size=60), st.integers(1, 6), st.randoms())
def test_lpt_is_a_partition_independent_of_input_order_and_balanced(costs, count, rng):
    units = [shards.Unit(round(c, 3), (("s", "c", i),)) for i, c in enumerate(costs)]
    shuffled = list(units)
    rng.shuffle(shuffled)
    first, second = shards.assign(units, count), shards.assign(shuffled, count)
    assert [sorted(u.trials for u in part) for part in first] == [sorted(u.trials for u in part) for part in second]
    assert sorted(t for part in first for u in part for t in u.trials) == [("s", "c", i) for i in range(len(costs))]
    loads = [sum(u.cost for u in part) for part in first]
    assert max(loads) - min(loads) <= max(u.cost for u in units) + 1e-6
