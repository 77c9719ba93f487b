"""The network lab's cost: setup and teardown per run and per trial, and how many lab trials at
once this machine holds with every answer intact.

    .venv/bin/python benchmarks/bench_lab.py [--quick] [--trials N] [--concurrency 4 8 16]

Per trial: create a :class:`TrialLab` (two namespaces, two veth pairs, the nft table, the
sysctls) and delete it, ``--trials`` times, one after another. Per run: a :class:`LabSession`'s
start (the sweep) and end. Concurrency: ``streamchaos run`` of a one-turn lab scenario (a NAT with
a 30 s timeout and nothing else) with curl as the client, K trials at once, each in its own lab;
a trial holds when curl printed the whole generated answer (outcome ``clean``). Needs root.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import scenario
from harness.clients import registry
from harness.drive import runner
from harness.network.lab import netns
from harness.network.lab.model import Network
from harness.network.lab.trial import LabSession


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"mean {statistics.mean(values) * 1000:.0f} ms, p50 {statistics.median(values) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms"


def per_trial(count: int) -> dict:
    setup, teardown = [], []
    network = Network(nat_idle_s=20, loss_up=0.01, loss_down=0.01, reset_after_bytes=10**9)
    for _ in range(count):
        lab = netns.TrialLab(network)
        started = time.monotonic()
        lab.create()
        setup.append(time.monotonic() - started)
        started = time.monotonic()
        lab.delete()
        teardown.append(time.monotonic() - started)
    return {"setup_s": setup, "teardown_s": teardown}


def per_run(count: int) -> dict:
    enter, leave = [], []
    for _ in range(count):
        started = time.monotonic()
        session = LabSession().__enter__()
        enter.append(time.monotonic() - started)
        started = time.monotonic()
        session.__exit__(None, None, None)
        leave.append(time.monotonic() - started)
    return {"start_s": enter, "end_s": leave}


def concurrent(k: int, results: Path) -> dict:
    item = scenario.from_data(
        {
            "version": 1,
            "name": "bench_lab",
            "seed": 1,
            "trials": k,
            "concurrency": k,
            "tls": False,
            "deadline_s": 60.0,
            "transports": ["http/1.1"],
            "conversation": {"words": 200},
            "network": {"nat_idle_s": 30},
        },
        "bench_lab.toml",
    )
    started = time.monotonic()
    directory = runner.run(runner.RunConfig((item,), (registry.get("curl"),), results_dir=results, run_id=f"k{k}", workers=k))
    wall = time.monotonic() - started
    records = runner.load_records(directory)
    intact = sum(1 for r in records if r["outcome"] == "clean" and r["answers_intact"] == r["answers_expected"])
    setups = [r["extra"]["network"]["setup_s"] for r in records if r.get("extra", {}).get("network")]
    return {
        "k": k,
        "intact": intact,
        "trials": len(records),
        "wall_s": round(wall, 2),
        "setup_s_mean": round(statistics.mean(setups), 4) if setups else None,
        "outcomes": sorted({r["outcome"] for r in records}),
        "errors": sorted({(r.get("error_line") or "")[:120] for r in records if r["outcome"] != "clean"})[:3],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[4, 8, 16, 32])
    args = parser.parse_args(argv)
    ok, why = netns.available()
    if not ok:
        print(f"bench_lab: {why}")
        return 2
    trials = 5 if args.quick else args.trials
    levels = [4, 8] if args.quick else args.concurrency
    out: dict = {"per_trial": per_trial(trials), "per_run": per_run(3 if args.quick else 5), "concurrent": []}
    print(f"per trial ({trials} labs, one after another): setup {ms(out['per_trial']['setup_s'])}; teardown {ms(out['per_trial']['teardown_s'])}")
    print(f"per run (LabSession: sweep, then delete what is left): start {ms(out['per_run']['start_s'])}; end {ms(out['per_run']['end_s'])}")
    with tempfile.TemporaryDirectory(prefix="bench-lab-") as temporary:
        for k in levels:
            row = concurrent(k, Path(temporary))
            out["concurrent"].append(row)
            print(
                f"{k:3d} lab trials at once (curl, 200-word answer): {row['intact']}/{row['trials']} answers intact, wall {row['wall_s']} s, "
                f"lab setup mean {row['setup_s_mean']} s{'; ' + '; '.join(row['errors']) if row['errors'] else ''}",
                flush=True,
            )
    spaces, links = [n for n in netns.namespaces() if n.startswith(f"{netns.PREFIX}-")], [n for n in netns.links() if netns.LINK_RE.match(n)]
    print(f"left behind after the benchmark: {len(spaces)} namespaces, {len(links)} links (other runs' included)")
    print(json.dumps({k: v for k, v in out.items() if k == "concurrent"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
