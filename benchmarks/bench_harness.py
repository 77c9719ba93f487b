"""What the harness costs per trial: a trivial client run bare, and the same client run through
the harness (lane, key, journal slice, integrity, record), in one run.

    .venv/bin/python benchmarks/bench_harness.py [--trials 100]

The trivial client is curl streaming one 100-event answer over HTTP/1.1 (no retries, ~5 ms).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import scenario  # noqa: E402
from harness.clients import registry  # noqa: E402
from harness.clients.adapters.command import CommandClient  # noqa: E402
from harness.drive import runner  # noqa: E402
from harness.drive.simulator_process import SimulatorProcess  # noqa: E402

BODY = (
    '{"model":"m","max_tokens":4000,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"bench\\n@sc words=94 deltas=94"}]}]}'
)
CURL = "curl -sS -N --http1.1 -H 'x-api-key: {api_key}' -H 'content-type: application/json' --data-binary @{body} {base_url}/v1/messages"


def bare(trials: int, body_file: Path) -> float:
    with SimulatorProcess(["--seed", "1"]) as sim:
        command = [
            "curl",
            "-sS",
            "-N",
            "--http1.1",
            "-H",
            "x-api-key: bare",
            "-H",
            "content-type: application/json",
            "--data-binary",
            f"@{body_file}",
            f"{sim.base_url}/v1/messages",
        ]
        subprocess.run(command, capture_output=True, check=True)  # warm-up
        started = time.monotonic()
        for _ in range(trials):
            subprocess.run(command, capture_output=True, check=True, timeout=30)
        return time.monotonic() - started


def through_harness(trials: int, body_file: Path, workers: int, directory: Path) -> float:
    path = directory / "plain.toml"
    path.write_text(
        textwrap.dedent("""
        version = 1
        name = "plain"
        transports = ["http/1.1"]
        tls = false
        [conversation]
        words = 94
        deltas = 94
    """)
    )
    item = scenario.load(path)
    client = registry.command_client(CURL.replace("{body}", str(body_file)), name="curl-bare", output="text")
    client = CommandClient(client.name, client.description, client.protocols, client.policy, template=client.template, output="sse")
    config = runner.RunConfig((item,), (client,), results_dir=directory / "results", run_id=f"w{workers}", trials=trials, workers=workers)
    started = time.monotonic()
    out = runner.run(config)
    elapsed = time.monotonic() - started
    records = runner.load_records(out)
    bad = [r for r in records if r["outcome"] != "clean"]
    if bad:
        raise SystemExit(f"harness trials did not all complete cleanly: {bad[0]['outcome']} {bad[0]['integrity']}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="30 trials")
    args = parser.parse_args(argv)
    trials = 30 if args.quick else args.trials
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        body_file = directory / "body.json"
        body_file.write_text(BODY)
        bare_s = bare(trials, body_file)
        one_s = through_harness(trials, body_file, 1, directory)
        two_s = through_harness(trials, body_file, 2, directory)
    print(f"\nharness overhead, {trials} trials of a trivial client (curl, one 100-event answer)")
    print(f"{'how':<28} {'seconds':>8} {'trials/s':>9} {'ms/trial':>9}")
    for label, seconds in (("bare (sequential)", bare_s), ("harness, 1 worker", one_s), ("harness, 2 workers", two_s)):
        print(f"{label:<28} {seconds:>8.2f} {trials / seconds:>9.1f} {1000 * seconds / trials:>9.1f}")
    print(f"overhead per trial (1 worker, incl. simulator start): {1000 * (one_s - bare_s) / trials:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
