"""Shards on one machine, and the merge's cost.

    .venv/bin/python benchmarks/bench_shards.py [--quick] [--max-shards 4] [--merge-trials 10000]

1. Wall time and trials/s of one grid run as 1, 2, 3 and 4 shards, each shard its own
   ``streamchaos run --shard i/n`` process started at the same time (2 workers each), then merged.
   The grid: a clean answer, a 50 % mid-stream reset with a retrying client, and a 0.4 s stall
   (time-bound, not CPU-bound), for a retrying test client and curl.
2. The merge of 10,000 synthetic trial records (4 shards, realistic record size): the checks and
   trials.jsonl, then summary/CSV/HTML report/JUnit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.drive import shards  # noqa: E402
from harness.present import gate, merge  # noqa: E402
from tests.support import CLI, KNOWN, reset_fault, scenario_toml  # noqa: E402

RETRYING = f"{KNOWN} fixed-retry"
SCENARIOS = {
    "bench_clean": "",
    "bench_reset": reset_fault(0.5),
    "bench_stall": '[[faults]]\ntype = "stall"\nseconds = 0.4\ntrigger = { at = "events", value = 4 }\n',
}


def write_scenarios(directory: Path, trials: int) -> list[str]:
    paths = []
    for name, faults in SCENARIOS.items():
        path = directory / f"{name}.toml"
        path.write_text(scenario_toml(name, seed=9, trials=trials, faults=faults))
        paths.append(str(path))
    return paths


def run_shards(count: int, scenario_paths: list[str], results: Path) -> tuple[float, int, float]:
    """(wall seconds of all shards, trials, merge seconds)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    base = [
        *CLI,
        "run",
        "--scenarios",
        *scenario_paths,
        "--client-cmd",
        RETRYING,
        "--client-name",
        "retrying",
        "--clients",
        "curl",
        "--results",
        str(results),
        "--run-id",
        f"bench-{count}",
        "--workers",
        "2",
    ]
    started = time.monotonic()
    processes = [
        subprocess.Popen([*base, "--shard", f"{i}/{count}"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for i in range(1, count + 1)
    ]
    try:
        for process in processes:
            _, err = process.communicate(timeout=1800)
            if process.returncode:
                raise SystemExit(f"shard failed ({process.returncode}): {err.decode()[-2000:]}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    wall = time.monotonic() - started
    dirs = [results / f"shard-{i}-of-{count}" / f"bench-{count}" for i in range(1, count + 1)]
    trials = sum(len((d / "trials.jsonl").read_text().splitlines()) for d in dirs)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "merge", *map(str, dirs), "--out", str(results / f"merged-{count}")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=600,
    )
    if done.returncode:
        raise SystemExit(f"merge failed: {done.stderr.decode()[-2000:]}")
    return wall, trials, time.monotonic() - started


def synthetic_shards(directory: Path, total: int, count: int = 4, cells: int = 20) -> list[Path]:
    """``count`` shard directories holding ``total`` records shaped like real ones."""
    per_cell = total // cells
    grid = [[f"scenario_{k:02d}", "client", per_cell] for k in range(cells)]
    units = [shards.Unit(1.0 + (k % 5), ((s, c, i),)) for k, (s, c, n) in enumerate(grid) for i in range(n)]
    slices = shards.assign(units, count)
    template = {
        "run_id": "synthetic",
        "client": "client",
        "key": "",
        "outcome": "recovered",
        "exit_code": 0,
        "hung": False,
        "elapsed_s": 0.41,
        "error_line": None,
        "answers_expected": 1,
        "answers_intact": 1,
        "integrity": [],
        "faults_fired": 1,
        "attempts": [
            [
                {
                    "ok": False,
                    "end": "fault:tcp_reset",
                    "status": 200,
                    "conn": 1,
                    "protocol": "http/1.1",
                    "t_start": 1.0,
                    "t_end": 1.1,
                    "events_out": 8,
                    "bytes_out": 1100,
                    "faults": ["tcp_reset"],
                    "retry_count": 0,
                },
                {
                    "ok": True,
                    "end": "complete",
                    "status": 200,
                    "conn": 2,
                    "protocol": "http/1.1",
                    "t_start": 1.6,
                    "t_end": 1.7,
                    "events_out": 26,
                    "bytes_out": 3313,
                    "faults": [],
                    "retry_count": 1,
                },
            ]
        ],
        "backoff_ms": [512.0],
        "time_to_recover_ms": 600.0,
        "bytes_out": 4413,
        "bytes_needed": 3313,
        "events_out": 34,
        "connections": 2,
        "stdout_tail": '{"turn": 0, "text": "..."}',
        "stderr_tail": "",
        "skipped": None,
        "extra": {"tls": False, "time_scale": 1.0},
    }
    base = {
        "manifest_version": 1,
        "run_id": "synthetic",
        "config_digest": "0" * 64,
        "streamchaos_version": shards.streamchaos_version(),
        "client_versions": {"client": "synthetic"},
        "grid": grid,
        "configuration": {"scenarios": [{"name": s} for s, _, _ in grid], "clients": [{"name": "client"}]},
    }
    dirs = []
    for index, assigned in enumerate(slices, start=1):
        shard_dir = directory / f"shard-{index}-of-{count}" / "synthetic"
        shard_dir.mkdir(parents=True)
        trials = sorted(t for unit in assigned for t in unit.trials)
        with open(shard_dir / "trials.jsonl", "w") as handle:
            for n, (s, c, i) in enumerate(trials):
                record = dict(template, scenario=s, trial=i, key=f"sc-synthetic-{s}-{c}-{i}", outcome="recovered" if (n % 7) else "failed")
                handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        by_cell: dict = {}
        for s, c, i in trials:
            by_cell.setdefault((s, c), []).append(i)
        manifest = dict(base, shard={"index": index, "count": count}, assigned=[[s, c, shards.ranges(v)] for (s, c), v in sorted(by_cell.items())])
        shards.write_manifest(shard_dir, manifest)
        dirs.append(shard_dir)
    return dirs


def merge_cost(total: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="streamchaos-bench-merge-") as tmp:
        dirs = synthetic_shards(Path(tmp), total)
        size = sum((d / "trials.jsonl").stat().st_size for d in dirs)
        started = time.monotonic()
        manifest = merge.merge(dirs, Path(tmp) / "merged")
        checked = time.monotonic() - started
        started = time.monotonic()
        merge.write_reports(Path(tmp) / "merged", manifest, gate.Policy())
        reports = time.monotonic() - started
        merged = len((Path(tmp) / "merged" / "trials.jsonl").read_text().splitlines())
    return {"trials": merged, "bytes": size, "check_and_trials_s": checked, "reports_s": reports}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 trials per cell instead of 24")
    parser.add_argument("--max-shards", type=int, default=4)
    parser.add_argument("--merge-trials", type=int, default=10_000)
    args = parser.parse_args(argv)
    per_cell = 10 if args.quick else 24
    print(f"machine: {os.cpu_count()} cores; grid: {len(SCENARIOS)} scenarios x 2 clients x {per_cell} trials")
    print("| shards | wall s | trials | trials/s | speed-up | merge s |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="streamchaos-bench-shards-") as tmp:
        paths = write_scenarios(Path(tmp), per_cell)
        first = None
        for count in range(1, args.max_shards + 1):
            wall, trials, merged = run_shards(count, paths, Path(tmp) / "results")
            first = first or wall
            print(f"| {count} | {wall:.1f} | {trials} | {trials / wall:.1f} | {first / wall:.2f}x | {merged:.2f} |", flush=True)
            shutil.rmtree(Path(tmp) / "results", ignore_errors=True)
    cost = merge_cost(args.merge_trials)
    print(
        f"\nmerge of {cost['trials']} synthetic trials ({cost['bytes'] / 1e6:.1f} MB in 4 shards): checks + trials.jsonl "
        f"{cost['check_and_trials_s']:.2f} s, summary/CSV/report/JUnit {cost['reports_s']:.2f} s, "
        f"total {cost['check_and_trials_s'] + cost['reports_s']:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
