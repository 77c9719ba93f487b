"""How long the report takes to make, and how big it is: the `make run` library size (19 scenarios
x 8 clients x 3 trials = 456 trials) and 10,000 trials.

The records are synthetic (shaped like real ones: attempts, backoff, error lines, a journal per
scenario with connections and requests with their writes, skipped cells, a versioned client, an
extra field), written to a temporary results directory; then what `streamchaos report` does is
timed once per size: summarize, report.html (matrix, sections, SVG, drill-down data), and the whole
write_all with its PNGs. Pass a results directory to time a real run as well.

usage: .venv/bin/python benchmarks/bench_report.py [--sizes 456 10000] [--dir RESULTS_DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import scenario
from harness.drive import runner
from harness.measure import metrics
from harness.present import report

CLIENTS = ("python-sdk", "python-sdk-h2", "ts-sdk-node", "ts-sdk-bun", "go-sdk", "claude-code@2.1.104", "curl", "ref-resilient")
OUTCOMES = ("recovered", "clean", "failed", "data_loss", "hung")
ERRORS = (
    "ReadError: [Errno 104] Connection reset by peer",
    "TypeError: terminated (cause: read ECONNRESET)",
    "read: connection reset by peer",
    "API Error: The socket connection was closed unexpectedly. For more information, pass verbose: true in the second argument to fetch()",
    "RemoteProtocolError: peer closed connection without sending complete message body (incomplete chunked read)",
)


def synthesize(directory: Path, total: int, seed: int = 7) -> int:
    """Write trials.jsonl and journal-<scenario>.jsonl with ``total`` trial records."""
    rng = random.Random(seed)
    names = [p.stem for p in scenario.library()]
    cells = [(s, c) for s in names for c in CLIENTS]
    per_cell = [total // len(cells) + (1 if i < total % len(cells) else 0) for i in range(len(cells))]
    directory.mkdir(parents=True, exist_ok=True)
    journals = {name: open(directory / f"journal-{name}.jsonl", "w", encoding="utf-8") for name in names}  # noqa: SIM115 - closed below
    written = 0
    clock = 1000.0
    with open(directory / "trials.jsonl", "w", encoding="utf-8") as out:
        for (name, client), count in zip(cells, per_cell):
            skip = client.endswith("-h2") and hash(name) % 3 == 0
            weights = [rng.random() for _ in OUTCOMES]
            for index in range(count):
                key = f"sc-bench-{name}-{client}-{index}".replace("@", "_")
                if skip:
                    record = _record(name, client, index, "", "skipped", [], clock)
                    record["skipped"] = f"{client} speaks h2; the scenario needs http/1.1"
                    out.write(json.dumps(record) + "\n")
                    written += 1
                    continue
                outcome = rng.choices(OUTCOMES, weights)[0]
                tries = 1 if outcome in ("clean", "failed") and rng.random() < 0.6 else rng.randint(2, 5)
                attempts, t = [], clock
                for k in range(tries):
                    conn = k + 1
                    start, end = t, t + rng.uniform(0.01, 0.4)
                    ok = k == tries - 1 and outcome in ("recovered", "clean")
                    events = rng.randint(5, 120)
                    attempts.append(
                        {
                            "ok": ok,
                            "end": "complete" if ok else "fault:tcp_reset",
                            "status": 200,
                            "conn": conn,
                            "protocol": "http/1.1",
                            "t_start": start,
                            "t_end": end,
                            "events_out": events,
                            "bytes_out": events * 140,
                            "faults": [] if ok else ["tcp_reset"],
                            "retry_count": k,
                        }
                    )
                    journals[name].write(
                        json.dumps(
                            {
                                "kind": "connection",
                                "conn": conn,
                                "peer": f"127.0.0.1:{40000 + conn}",
                                "tls": True,
                                "protocol": "http/1.1",
                                "t_accept": start - 0.002,
                                "t_close": end + 0.001,
                                "keys": [key],
                                "requests": 1,
                                "faults": [],
                                "end": "reset" if not ok else "client_close",
                                "lane": key,
                            }
                        )
                        + "\n"
                    )
                    writes = [[e, e * 140, start + (end - start) * e / events] for e in range(1, events + 1, 3)]
                    journals[name].write(
                        json.dumps(
                            {
                                "kind": "request",
                                "request_id": f"req_{key}_{k}",
                                "conn": conn,
                                "key": key,
                                "protocol": "http/1.1",
                                "conversation": "c0",
                                "t_headers": start,
                                "t_end": end,
                                "status": 200,
                                "end": attempts[-1]["end"],
                                "events_out": events,
                                "bytes_out": events * 140,
                                "writes": writes,
                                "path": "/v1/messages",
                                "faults": [] if ok else [{"type": "tcp_reset", "t": end, "events_out": events}],
                            }
                        )
                        + "\n"
                    )
                    t = end + rng.uniform(0.3, 2.5)
                clock = t + 0.1
                record = _record(name, client, index, key, outcome, [attempts], clock)
                if outcome == "failed":
                    record["error_line"] = rng.choice(ERRORS)
                if client.startswith("claude-code"):
                    record["sockets"] = {"keepalive": False, "reused": rng.randint(0, 3)}
                out.write(json.dumps(record) + "\n")
                written += 1
    for handle in journals.values():
        handle.close()
    return written


def _record(name: str, client: str, index: int, key: str, outcome: str, attempts: list, clock: float) -> dict:
    gaps = [round((b["t_start"] - a["t_end"]) * 1000, 3) for group in attempts for a, b in itertools.pairwise(group)]
    return {
        "run_id": "bench",
        "scenario": name,
        "client": client,
        "trial": index,
        "key": key,
        "outcome": outcome,
        "exit_code": 0 if outcome in ("recovered", "clean", "data_loss") else 1,
        "hung": outcome == "hung",
        "elapsed_s": 1.5,
        "error_line": None,
        "answers_expected": 1,
        "answers_intact": 1 if outcome in ("recovered", "clean") else 0,
        "integrity": ["answer 0: truncated (120 characters)"] if outcome == "data_loss" else [],
        "faults_fired": sum(len(g) for g in attempts) - 1 if attempts else 0,
        "attempts": attempts,
        "backoff_ms": gaps,
        "time_to_recover_ms": None,
        "bytes_out": 10000,
        "bytes_needed": 8000,
        "events_out": 100,
        "connections": sum(len(g) for g in attempts),
        "stdout_tail": '{"turn":0,"error":"..."}\n' * 4,
        "stderr_tail": "Traceback ...\n" * 10,
        "skipped": None,
        "extra": {"tls": True, "time_scale": 0.1},
    }


def measure(directory: Path) -> dict:
    started = time.perf_counter()
    records = runner.only_latest(runner.load_records(directory))
    rows = metrics.summarize(records)
    summarized = time.perf_counter()
    page = report.render_page(directory, rows, {"run_id": directory.name}, records=records)
    rendered = time.perf_counter()
    paths = report.write_all(directory, rows, {"run_id": directory.name}, records=records)
    written = time.perf_counter()
    trials = len([r for r in records if not r.get("skipped")])
    return {
        "trials": trials,
        "summarize_s": round(summarized - started, 3),
        "report_html_s": round(rendered - summarized, 3),
        "write_all_s": round(written - rendered, 3),
        "html_bytes": len(page.encode()),
        "html_file_bytes": paths["html"].stat().st_size,
        "drilldowns": len(json.loads(page.split("id=trial-data>", 1)[1].split("</script>", 1)[0])),
        "svg_plots": page.count("<svg"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[456, 10000])
    parser.add_argument("--dir", type=Path, default=None, help="also time this real results directory")
    args = parser.parse_args()
    print(f"{'records':>8} {'trials':>7} {'summarize s':>12} {'report.html s':>14} {'write_all s':>12} {'html MB':>8} {'drill-downs':>11}  source")
    for size in args.sizes:
        work = Path(tempfile.mkdtemp(prefix="streamchaos-bench-report-"))
        try:
            count = synthesize(work / "bench", size)
            result = measure(work / "bench")
            _print(count, result, "synthetic")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.dir:
        result = measure(args.dir.resolve())
        _print(result["trials"], result, str(args.dir))
    return 0


def _print(count: int, r: dict, source: str) -> None:
    print(
        f"{count:>8} {r['trials']:>7} {r['summarize_s']:>12.3f} {r['report_html_s']:>14.3f} {r['write_all_s']:>12.3f} "
        f"{r['html_file_bytes'] / 1e6:>8.2f} {r['drilldowns']:>11}  {source}"
    )


if __name__ == "__main__":
    sys.exit(main())
