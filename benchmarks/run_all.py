"""Every benchmark of the project, in one run (``make bench``).

    .venv/bin/python benchmarks/run_all.py [--quick] [--only NAME ...]

Each benchmark runs as its own process (one at a time, so they do not disturb each other's
figures) and prints its own table: the data plane against hypercorn, aimock and MockServer; fault
cut precision and stall timing; toxiproxy's cost per hop; the harness's cost per trial; and the
load studies (metastability, backoff ordering).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "dataplane": ("bench_dataplane.py", ["--quick"]),
    "faults": ("bench_faults.py", ["--quick"]),
    "toxiproxy": ("bench_toxiproxy.py", ["--requests", "500"]),
    "harness": ("bench_harness.py", ["--quick"]),
    "metastability": ("bench_metastability.py", ["--quick"]),
    "report": ("bench_report.py", []),
    "lab": ("bench_lab.py", ["--quick"]),  # the network lab: needs root
    "shards": ("bench_shards.py", ["--quick"]),
}
DEADLINE_S = 3600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's short form")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=None)
    args = parser.parse_args(argv)
    failed = []
    for name, (script, quick) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        print(f"\n===== {name}: {script} =====", flush=True)
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, str(HERE / script), *(quick if args.quick else [])], timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            failed.append(f"{name} (over {DEADLINE_S} s)")
            continue
        print(f"===== {name}: exit {done.returncode} in {time.monotonic() - started:.0f} s", flush=True)
        if done.returncode:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that did not meet their targets or failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
