"""Data-plane throughput: 100-event streaming answers on h2c, HTTP/1.1 and h2+TLS.

For each server and protocol: start the server pinned to core 0 (``taskset -c 0``), check with curl
that one answer really is 100 SSE events (and measure the mean event size), warm up, then run
``h2load`` pinned to core 1 three times and keep the median run (by answers/s). Reported per cell:
answers/s, events/s, p50/p99 latency (from h2load's per-request ``--log-file``), the server's CPU
(user+sys seconds per 1000 answers, from /proc/<pid>/stat) and how busy core 0 was with other
processes during the run (this machine may be shared; a high value makes the cell noisy).

Servers:
  streamchaos      our simulator (``python -m harness.cli serve``), default coalescing (one write per answer here)
  streamchaos-fpe  the same with ``--frame-per-event``: one DATA frame / chunk per SSE event, like the hypercorn
                   reference (events due at the same moment share a socket write); compared with hypercorn
                   and with our coalesced path under "Per-event path"

Then the paced benchmark (``bench_paced.py``: N streams at 50 events/s) adds its rows (``--paced-streams``).
  hypercorn        hypercorn 0.18 trio worker + a plain ASGI app streaming the same bytes (benchmarks/hypercorn_app.py)
  aimock           @copilotkit/aimock from npm, an equivalent 100-event Anthropic answer (HTTP/1.1 only)
  mockserver       MockServer (Maven Central jar-with-dependencies), httpSseResponse with the same 100 events

A cell that cannot be measured says why (``n/a: ...``). A run with any failed request is marked
INVALID and not used for the targets.

    .venv/bin/python benchmarks/bench_dataplane.py [--quick] [--servers streamchaos,hypercorn] [--protocols h2c,h1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload
from dataplane.cells import Cell, measure
from dataplane.common import LOAD_CORE, PROTOCOL_TITLES, PROTOCOLS, ROOT, SERVER_CORE, SERVERS, log
from dataplane.report import per_event_lines, source_state, table, targets
from dataplane.servers import Aimock, Hypercorn, MockServer, Streamchaos
from dataplane.tools import ensure_apt_tools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run of 1000 answers per cell after a 300-answer warm-up")
    parser.add_argument("--requests", type=int, default=None, help="answers per measured run (default 5000)")
    parser.add_argument("--clients", type=int, default=20, help="h2load connections (default 20)")
    parser.add_argument("--repeats", type=int, default=None, help="measured runs per cell; the median is reported (default 3)")
    parser.add_argument("--warmup", type=int, default=None, help="answers in the unmeasured warm-up run (default 2000)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help=f"comma-separated subset of {','.join(PROTOCOLS)}")
    parser.add_argument("--quiet", type=float, default=0.15, help="wait before each run until the machine is at most this busy (default 0.15)")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="...but at most this many seconds (default 60)")
    parser.add_argument("--max-noise", type=float, default=0.10, help="a run where other processes took more of core 0 is repeated (default 0.10)")
    parser.add_argument("--noise-retries", type=int, default=2, help="...at most this many times (default 2)")
    parser.add_argument("--sim-args", default="", help="extra arguments for `streamchaos serve` (e.g. '--frame-per-event')")
    parser.add_argument(
        "--paced-streams", default="100,300,1000", help="then the paced benchmark (bench_paced.py) for these stream counts; '' skips it"
    )
    parser.add_argument("--profile", type=Path, default=None, help="run streamchaos under cProfile, .prof files into this directory")
    parser.add_argument("--out", type=Path, default=None, help="directory for logs and the JSON result (default results/bench-<time>)")
    args = parser.parse_args(argv)
    args.requests = args.requests or (1000 if args.quick else 5000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (300 if args.quick else 2000)
    servers = [s for s in args.servers.split(",") if s]
    protocols = [p for p in args.protocols.split(",") if p]
    for name in servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}")
    for name in protocols:
        if name not in PROTOCOLS:
            parser.error(f"unknown protocol {name!r}")
    if os.cpu_count() is None or os.cpu_count() < 2:
        log("warning: fewer than 2 cores; server and h2load share a core")

    ensure_apt_tools()
    out = args.out or ROOT / "results" / time.strftime("bench-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    body_file = out / "request.json"
    body_file.write_bytes(workload.request_body())

    factories = {
        "streamchaos": lambda: Streamchaos(args.sim_args.split(), args.profile.resolve() if args.profile else None),
        # One write per SSE event, as the hypercorn reference does (one http.response.body per event).
        "streamchaos-fpe": lambda: Streamchaos(
            [*args.sim_args.split(), "--frame-per-event"],
            args.profile.resolve() if args.profile else None,
            "streamchaos-fpe",
            "streamchaos --frame-per-event",
        ),
        "hypercorn": Hypercorn,
        "aimock": Aimock,
        "mockserver": MockServer,
    }
    cells: list[Cell] = []
    started = time.monotonic()
    source = source_state()
    log(
        f"h2load -n {args.requests} -c {args.clients} -m 1 on core {LOAD_CORE}; servers on core {SERVER_CORE}; "
        f"{args.repeats} run(s) per cell after a {args.warmup}-answer warm-up; logs in {out}"
    )
    for name in servers:
        server = factories[name]()
        (out / name).mkdir(exist_ok=True)
        for protocol in protocols:
            log(f"{name} / {PROTOCOL_TITLES[protocol]}")
            cell = measure(server, protocol, args, out, body_file)
            if cell.status == "n/a":
                log(f"  n/a: {cell.reason}")
            cells.append(cell)

    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    result = {
        "requests": args.requests,
        "clients": args.clients,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "events_per_answer": workload.EVENTS,
        "loadavg_end": loadavg,
        "source": source,
        "seconds": round(time.monotonic() - started, 1),
        "cells": [asdict(c) for c in cells],
    }
    (out / "dataplane.json").write_text(json.dumps(result, indent=1, default=str))

    print()
    print(
        f"Data plane: {workload.EVENTS}-event streaming answers; h2load -n {args.requests} -c {args.clients} -m 1 "
        f"(median of {args.repeats}); server on core {SERVER_CORE}, h2load on core {LOAD_CORE}; streamchaos at {source}"
    )
    print(table(cells))
    notes = [c for c in cells if c.status == "ok" and c.reason]
    for c in notes:
        print(f"  ok* {c.server} {PROTOCOL_TITLES[c.protocol]}: {c.reason}")
    print("CPU s/1k ans = server user+sys CPU seconds per 1000 answers (/proc/<pid>/stat); CPU util = server CPU / wall;")
    print("ans/CPU-s = answers per second of server CPU: what one dedicated core would give if the server is CPU-bound;")
    print("core0 other = CPU on the server's core used by other processes during the run (the machine may be shared: noise if high).")
    print(f"load average at the end: {' '.join(loadavg)}; results in {out}")
    lines = targets(cells)
    if lines:
        print("Targets (streamchaos, one core):")
        print("\n".join(lines))
    per_event = per_event_lines(cells)
    if per_event:
        print("Per-event path (one DATA frame / chunk per event), same run:")
        print("\n".join(per_event))
    if args.paced_streams:
        import bench_paced  # paced streams as their own rows: N streams at 50 events/s (see bench_paced.py)

        print()
        print("Paced: " + bench_paced.__doc__.split("\n\n")[0].split(": ", 1)[1])
        bench_paced.main(["--streams", args.paced_streams, "--json", str(out / "paced.json")])
    return 0 if all(c.status != "invalid" for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
