"""Sequential against fixed-count gates on library scenarios, with the SDKs and the known clients.

    .venv/bin/python benchmarks/bench_sequential.py [--trials 30] [--batch 5] [--threshold 0.5] [--workers 2]

For each client group it runs the fixed count (``streamchaos run --trials N``), gates it
(``gate --from``), replays the sequential gate on those trials (``gate --sequential --from``),
and runs the sequential gate live with the same run id (``gate --sequential``: only the trials it
needs). Every trial draws its faults from (seed, run id, scenario, client, trial index), so the
live sequential gate sees the first trials of the fixed run again. Prints one Markdown row per cell.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KNOWN = f"{sys.executable} {ROOT / 'tests' / 'clients' / 'known_client.py'}"
SCENARIOS = ["reset_mid_thinking", "fin_mid_body", "errors_500_429_retry_after", "overload_529_burst", "overload_sse_error", "startup_burst"]
GROUPS = {
    "sdks": ["--clients", "python-sdk", "ts-sdk-node", "go-sdk"],
    "never-retry": ["--client-cmd", f"{KNOWN} never-retry", "--client-name", "known-never-retry"],
    "fixed-retry": ["--client-cmd", f"{KNOWN} fixed-retry", "--client-name", "known-fixed-retry"],
}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=7200)


def verdicts_fixed(junit: Path) -> dict:
    import junitparser

    out = {}
    for suite in junitparser.JUnitXml.fromfile(str(junit)):
        for case in suite:
            state = "pass"
            for result in case.result:
                state = "fail" if isinstance(result, (junitparser.Failure, junitparser.Error)) else "skip"
            out[(case.classname.split(".", 1)[1], case.name)] = state
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--groups", nargs="*", default=list(GROUPS))
    parser.add_argument("--keep", type=Path, default=None, help="keep results here")
    args = parser.parse_args(argv)
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="streamchaos-bench-seq-"))
    tmp.mkdir(parents=True, exist_ok=True)
    policy = tmp / "policy.toml"
    policy.write_text(
        f"version = 1\n[defaults]\nmin_recovery_lower = {args.threshold}\nmax_hangs = 0\nmax_data_loss = 0\n"
        f'[sequential]\nbatch = {args.batch}\ninconclusive = "fail"\n'
    )
    rows = []
    times = {}
    for group in args.groups:
        common = ["--scenarios", *SCENARIOS, *GROUPS[group], "--trials", str(args.trials), "--workers", str(args.workers), "--run-id", f"seq-{group}"]
        started = time.monotonic()
        done = cli("run", *common, "--results", str(tmp / "fixed"))
        fixed_s = time.monotonic() - started
        fixed_dir = tmp / "fixed" / f"seq-{group}"
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        cli("gate", "--from", str(fixed_dir), "--policy", str(policy), "--junit", str(tmp / f"fixed-{group}.xml"))
        fixed = verdicts_fixed(tmp / f"fixed-{group}.xml")
        replay_dir = tmp / f"replay-{group}"
        cli("gate", "--sequential", "--from", str(fixed_dir), "--policy", str(policy), "--junit", str(tmp / f"replay-{group}.xml"))
        replay = {(c["scenario"], c["client"]): c for c in json.loads((fixed_dir / "sequential.json").read_text())["cells"]}
        replay_dir.mkdir(exist_ok=True)
        (replay_dir / "sequential.json").write_text((fixed_dir / "sequential.json").read_text())
        started = time.monotonic()
        cli("gate", "--sequential", *common, "--results", str(tmp / "live"), "--policy", str(policy), "--junit", str(tmp / f"live-{group}.xml"))
        live_s = time.monotonic() - started
        live = {(c["scenario"], c["client"]): c for c in json.loads((tmp / "live" / f"seq-{group}" / "sequential.json").read_text())["cells"]}
        times[group] = (fixed_s, live_s)
        for key, cell in replay.items():
            other = live.get(key, {})
            rows.append(
                (key[0], key[1], fixed.get(key, "?"), args.trials, cell["verdict"], cell["spent"], other.get("verdict", "?"), other.get("spent", "?"))
            )
        print(f"{group}: fixed {fixed_s:.0f} s, live sequential {live_s:.0f} s", file=sys.stderr, flush=True)
    print(f"threshold {args.threshold:.0%} (lower bound of the recovery interval), batch {args.batch}, fixed count {args.trials}\n")
    print("| scenario | client | fixed gate | fixed trials | sequential (replayed) | trials | sequential (live) | trials | saving |")
    print("|---|---|---|---|---|---|---|---|---|")
    agree = spent = total = 0
    for scenario, client, fixed, n, replayed, used, live, live_used in rows:
        if replayed == "skip":
            continue
        same = (replayed == fixed) or (replayed == "inconclusive" and fixed == "fail")
        agree += same
        spent += used
        total += n
        print(f"| {scenario} | {client} | {fixed} | {n} | {replayed} | {used} | {live} | {live_used} | {n / used:.1f}x |")
    counted = len([r for r in rows if r[4] != "skip"])
    print(
        f"\n{agree} of {counted} cells agree with the fixed-count gate (inconclusive counted as fail); {spent} of {total} trials "
        f"({total / max(spent, 1):.1f}x fewer). Wall time: "
        + ", ".join(f"{g} fixed {a:.0f} s / live sequential {b:.0f} s" for g, (a, b) in times.items())
    )
    print(f"results: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
