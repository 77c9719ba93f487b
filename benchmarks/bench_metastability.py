"""Retry strategies under load: the metastable retry storm, and Brooker's backoff study.

    .venv/bin/python benchmarks/bench_metastability.py [--quick] [--runs 5] [--json FILE]

Table 1 (``DipExperiment`` in harness/measure/studies.py): 40 closed-loop clients against 10 slots of
100 ms (100 answers/s) with a FIFO queue, offered ~67/s, and a dip to 2 slots from 3 s to 5 s.
Clients abandon an attempt after 250 ms; the server still serves it (HTTP/1.1 does not notice),
so once the queue is longer than the timeout the server works only for clients that left. Each
strategy runs against its own simulator, side by side. The same runs are repeated with no queue
(over-capacity requests get 529 at once): then no work is wasted and nothing stays broken, which
is why the metastable model needs the queue.

Table 2 (``OccExperiment``): N=50 clients, one optimistic-concurrency write each, retried on 409
with exponential backoff (no jitter), full jitter and decorrelated jitter: total calls and time
until all are done, mean of ``--runs`` runs (no jitter: fewer). "published" is Brooker's setting
(network 10 ms, base 5 ms, cap 2 s; about a minute), "quick" the setting tests/test_metastability.py
runs. Beside the measurements, the same model as discrete events (no sockets, 100 runs): with no
CPU cost, and with the simulator's and the clients' measured CPU per request (the herd of 50 has
to pass a server that spends ~0.5 ms on each request, which spreads it).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trio  # noqa: E402

from harness.drive.simulator_process import SimulatorProcess  # noqa: E402
from harness.measure.loadgen import LoadResult, run_load, run_many  # noqa: E402
from harness.measure.studies import DipExperiment, OccExperiment  # noqa: E402

PUBLISHED = {"exponential": (625, 36.7), "full_jitter": (333, 2.93), "decorrelated_jitter": (376, 2.34)}  # REFERENCE.md section 6
SERVER_CPU_S, CLIENT_CPU_S = 0.00055, 0.0003  # measured per request on the development machine


# -- table 1 ---------------------------------------------------------------------------------------


def recovery_s(result: LoadResult, e: DipExperiment, pre: float) -> float:
    """Seconds after the dip until goodput is back to 80 % of before for two seconds in a row."""
    series = result.goodput_series(1.0)
    end = math.ceil(e.dip_s[1])
    for second in range(end, min(len(series), int(e.duration_s)) - 1):
        if series[second] >= 0.8 * pre and series[second + 1] >= 0.8 * pre:
            return second - e.dip_s[1]
    return math.inf


def dip_table(sims: list[SimulatorProcess], e: DipExperiment, label: str, plan: dict) -> list[dict]:
    strategies = e.strategies()
    for sim in sims:
        sim.load_plan(plan)
    results = trio.run(run_many, [(e.spec(strategy), sim.port) for strategy, sim in zip(strategies.values(), sims)])
    rows = []
    print(f"\n{label}")
    print(
        f"{'strategy':<18} {'before':>7} {'dip':>6} {'after':>7} {'after/before':>12} {'offered after':>13} "
        f"{'calls':>6} {'calls/req':>9} {'recovered':>10}  goodput per second"
    )
    for (name, _), r in zip(strategies.items(), results):
        pre, dip, post = r.goodput(*e.pre_s), r.goodput(*e.dip_s), r.goodput(*e.post_s)
        rec = recovery_s(r, e, pre)
        row = {
            "strategy": name,
            "before": pre,
            "dip": dip,
            "after": post,
            "ratio": post / pre if pre else 0.0,
            "offered_after": r.offered(*e.post_s),
            "calls": r.calls,
            "amplification": r.calls / max(1, len(r.logicals)),
            "recovered_s": rec,
            "series": [round(x) for x in r.goodput_series()],
        }
        rows.append(row)
        print(
            f"{name:<18} {pre:>7.1f} {dip:>6.1f} {post:>7.1f} {row['ratio']:>12.0%} {row['offered_after']:>11.1f}/s "
            f"{r.calls:>6} {row['amplification']:>9.2f} "
            f"{('%.0f s' % rec) if math.isfinite(rec) else 'never':>10}  {' '.join(f'{x:>3}' for x in row['series'][: int(e.duration_s)])}"
        )
    return rows


# -- table 2 ---------------------------------------------------------------------------------------


def occ_measured(sim: SimulatorProcess, e: OccExperiment, runs: int) -> dict[str, tuple[float, float, list]]:
    out = {}
    for backoff in e.BACKOFFS:
        measured = []
        for seed in range(1, (max(1, runs // 2) if backoff == "exponential" else runs) + 1):
            sim.load_plan(e.plan(seed))
            r = trio.run(run_load, e.spec(backoff, seed), "127.0.0.1", sim.port)
            measured.append((r.calls, r.completion_s))
        out[backoff] = (statistics.mean(c for c, _ in measured), statistics.mean(t for _, t in measured), measured)
    return out


def occ_model(e: OccExperiment, backoff: str, rng: random.Random, server_cpu_s: float = 0.0, client_cpu_s: float = 0.0) -> tuple[int, float]:
    """One run of the simulator's conflict model as discrete events: a write reads the version when
    the (serial) server admits it and commits after its jittered window; first committer wins."""
    base, cap = e.base_s * e.backoff_scale, e.cap_s * e.backoff_scale
    mean, sd = e.net_delay_s
    queue: list = []
    order = itertools.count()
    free = {"server": 0.0, "client": 0.0}
    version, calls, now = 0, 0, 0.0
    retries = [0] * e.clients
    previous = [base] * e.clients

    def push(at, *event):
        heapq.heappush(queue, (at, next(order), *event))

    def send(at, client):
        free["client"] = max(at, free["client"]) + client_cpu_s
        push(free["client"] + abs(rng.normalvariate(mean, sd)), "arrive", client)

    for client in range(e.clients):
        send(0.0, client)
    while queue:
        now, _, kind, *args = heapq.heappop(queue)
        if kind == "arrive":
            free["server"] = max(now, free["server"]) + server_cpu_s
            push(free["server"] + e.window_s * (1 + e.jitter * (2 * rng.random() - 1)), "commit", args[0], version)
        elif kind == "commit":
            client, read = args
            calls += 1
            ok = read == version
            version += ok
            push(now + abs(rng.normalvariate(mean, sd)), "answer", client, ok)
        elif kind == "answer":
            client, ok = args
            if not ok:
                retries[client] += 1
                ceiling = min(cap, base * 2 ** retries[client])
                if backoff == "exponential":
                    delay = ceiling
                elif backoff == "full_jitter":
                    delay = rng.uniform(0, ceiling)
                else:
                    delay = previous[client] = min(cap, rng.uniform(base, previous[client] * 3))
                push(now + delay, "retry", client)
        else:
            send(now, args[0])
    return calls, now


def model_means(e: OccExperiment, runs: int, **cpu: float) -> dict[str, tuple[float, float]]:
    rng = random.Random(1)
    out = {}
    for backoff in e.BACKOFFS:
        results = [occ_model(e, backoff, rng, **cpu) for _ in range(runs)]
        out[backoff] = (statistics.mean(c for c, _ in results), statistics.mean(t for _, t in results))
    return out


def occ_table(label: str, e: OccExperiment, measured: dict | None, model_runs: int) -> dict:
    ideal = model_means(e, model_runs)
    costly = model_means(e, model_runs, server_cpu_s=SERVER_CPU_S, client_cpu_s=CLIENT_CPU_S)
    print(
        f"\n{label}: N={e.clients}, window {e.window_s * 1e3:g} ms, network {e.net_delay_s[0] * 1e3:g} ms (sd {e.net_delay_s[1] * 1e3:g}), "
        f"backoff base {e.base_s * e.backoff_scale * 1e3:g} ms cap {e.cap_s * e.backoff_scale:g} s"
    )
    print(
        f"{'backoff':<20} {'calls':>7} {'time s':>8}   {'model calls':>11} {'model s':>8}   "
        f"{'model+CPU calls':>15} {'s':>6}   {'published':>12}   runs"
    )
    for backoff in e.BACKOFFS:
        calls, seconds, runs = measured[backoff] if measured else (math.nan, math.nan, [])
        published = PUBLISHED[backoff]
        print(
            f"{backoff:<20} {calls:>7.0f} {seconds:>8.2f}   {ideal[backoff][0]:>11.0f} {ideal[backoff][1]:>8.2f}   "
            f"{costly[backoff][0]:>15.0f} {costly[backoff][1]:>6.2f}   "
            f"{published[0]:>4} / {published[1]:>5.2f}   {[(c, round(t, 2)) for c, t in runs]}"
        )
    return {"measured": {b: v[:2] for b, v in (measured or {}).items()}, "model": ideal, "model_cpu": costly}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the published setting (a minute) and the no-queue control; 3 runs")
    parser.add_argument("--runs", type=int, default=5, help="runs per jittered backoff (no jitter: half as many)")
    parser.add_argument("--model-runs", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else args.runs
    started = time.monotonic()
    summary: dict = {}
    e = DipExperiment()
    with ExitStack() as stack:
        sims = [stack.enter_context(SimulatorProcess(["--seed", "1"])) for _ in e.strategies()]
        print(
            f"table 1: {e.clients} clients, think {e.think_s} s, attempt timeout {e.attempt_timeout_s} s; capacity {e.limit} x {e.service_s} s "
            f"= {e.capacity_per_s:.0f}/s, dip to {e.dip_limit} slots in {e.dip_s} s; goodput = successful logical requests/s "
            f"before {e.pre_s}, in the dip, after {e.post_s}"
        )
        summary["dip_queue"] = dip_table(sims, e, f"queue {e.queue} (waiters dropped after {e.queue_timeout_s} s): wasted work", e.plan())
        if not args.quick:
            plan = e.plan()
            plan["capacity"]["queue"] = 0
            summary["dip_no_queue"] = dip_table(sims, e, "no queue: over capacity is 529 at once (control: no wasted work)", plan)
        quick = OccExperiment()
        summary["occ_quick"] = occ_table("table 2, quick (tests)", quick, occ_measured(sims[0], quick, runs), args.model_runs)
        if not args.quick:
            published = OccExperiment.published()
            summary["occ_published"] = occ_table("table 2, published setting", published, occ_measured(sims[0], published, runs), args.model_runs)
    print(f"\n{time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
