"""Load against the capacity model, on real sockets (127.0.0.1), clients from harness/measure/loadgen.py.

(a) A metastable failure: a capacity dip starts a retry storm; after the dip ends naive retries
    keep the server busy with abandoned attempts (goodput stays near zero) while clients with a
    retry budget or adaptive throttling recover.
(b) Brooker's backoff study: 50 clients, one optimistic-concurrency write each; no jitter makes
    the most calls and takes longest, full jitter makes the fewest calls, decorrelated jitter is
    close to it and finishes about as fast.

Numbers are printed (``pytest -s``); ``benchmarks/bench_metastability.py`` prints the full tables.
"""

from __future__ import annotations

import statistics
import time
from contextlib import ExitStack

import pytest
import trio

from harness.drive.simulator_process import SimulatorProcess
from harness.measure.loadgen import LoadSpec, run_load, run_many
from harness.measure.strategies import Strategy
from harness.measure.studies import DipExperiment, OccExperiment

pytestmark = pytest.mark.slow

ONCE = Strategy("once", backoff="none", max_attempts=1)


@pytest.fixture(scope="module")
def sims():
    """Three simulators: the dip runs side by side (one each), the rest on the first."""
    with ExitStack() as stack:
        yield [stack.enter_context(SimulatorProcess(["--seed", "1"])) for _ in range(3)]


def test_capacity_on_the_wire_rejects_at_once_and_journals_admission(sims):
    sim = sims[0]
    sim.load_plan({"capacity": {"limit": 2, "service_s": 0.3, "retry_after": 1}})
    spec = LoadSpec(3, ONCE, requests_per_client=1, deadline_s=10, key_prefix="wire")
    result = trio.run(run_load, spec, "127.0.0.1", sim.port)
    by_status = sorted((a.status, round(a.t_end - a.t_start, 1)) for a in result.attempts)
    assert by_status == [(200, 0.3), (200, 0.3), (529, 0.0)]
    records = [r for r in sim.journal() if r["kind"] == "request" and (r["key"] or "").startswith("wire")]
    notes = sorted((r["capacity"]["outcome"], r["capacity"]["in_flight"], r["status"]) for r in records)
    assert notes == [("admitted", 1, 200), ("admitted", 2, 200), ("rejected", 2, 529)]
    assert all(r["capacity"]["in_flight_after"] in (0, 1) for r in records if r["capacity"]["outcome"] == "admitted")


@pytest.mark.study
def test_a_dip_leaves_naive_retries_in_a_metastable_storm_while_budgeted_clients_recover(sims):
    e = DipExperiment()
    names = ("naive", "retry-budget", "adaptive-throttle")
    strategies = e.strategies()
    for sim in sims:
        sim.load_plan(e.plan())  # dip windows count from here
    started = time.monotonic()
    results = dict(zip(names, trio.run(run_many, [(e.spec(strategies[name]), sim.port) for name, sim in zip(names, sims)])))
    print(
        f"\ncapacity {e.capacity_per_s:.0f}/s, dip to {e.dip_limit / e.service_s:.0f}/s in {e.dip_s} s; "
        f"goodput (successful logical requests/s) before {e.pre_s} and after {e.post_s}; {time.monotonic() - started:.1f} s"
    )
    rows = {}
    for name, r in results.items():
        pre, post = r.goodput(*e.pre_s), r.goodput(*e.post_s)
        rows[name] = (pre, post, r.offered(*e.post_s))
        print(
            f"  {name:18s} before {pre:5.1f}  after {post:5.1f} ({post / max(pre, 1e-9):4.0%})  offered after {rows[name][2]:5.1f}/s  "
            f"per second: {[round(x) for x in r.goodput_series()]}  {r.outcomes()}"
        )
    for name, (pre, _, _) in rows.items():
        assert pre >= 45, f"{name}: the system was not in its good state before the dip"
    naive_pre, naive_post, naive_offered = rows["naive"]
    assert naive_post <= 0.2 * naive_pre, "naive retries recovered: no metastable state"
    assert naive_offered > e.capacity_per_s, "the storm should keep offered load above capacity after the dip"
    budget_pre, budget_post, budget_offered = rows["retry-budget"]
    assert budget_post >= 0.8 * budget_pre
    assert budget_offered < e.capacity_per_s
    throttle_pre, throttle_post, _ = rows["adaptive-throttle"]
    assert throttle_post >= 0.6 * throttle_pre


@pytest.mark.study
def test_backoff_study_ordering_no_jitter_worst_full_jitter_fewest_calls(sims):
    sim = sims[0]
    e = OccExperiment()
    runs = {"exponential": 2, "full_jitter": 3, "decorrelated_jitter": 3}
    measured: dict[str, list[tuple[int, float]]] = {}
    for backoff, count in runs.items():
        for seed in range(1, count + 1):
            sim.load_plan(e.plan(seed))
            r = trio.run(run_load, e.spec(backoff, seed), "127.0.0.1", sim.port)
            assert r.successes == e.clients, (backoff, r.summary())
            measured.setdefault(backoff, []).append((r.calls, r.completion_s))
    calls = {b: statistics.mean(c for c, _ in m) for b, m in measured.items()}
    times = {b: statistics.mean(t for _, t in m) for b, m in measured.items()}
    print(
        f"\nN={e.clients} OCC writes, backoff base {e.base_s * e.backoff_scale * 1e3:g} ms cap {e.cap_s * e.backoff_scale:g} s, "
        f"window {e.window_s * 1e3:g} ms (Brooker, published: none 625 / 36.7 s, full 333 / 2.93 s, decorrelated 376 / 2.34 s)"
    )
    for backoff, m in measured.items():
        print(f"  {backoff:20s} calls {calls[backoff]:6.1f}  completion {times[backoff]:6.2f} s   runs {m}")
    assert calls["exponential"] > max(calls["full_jitter"], calls["decorrelated_jitter"])
    assert times["exponential"] > 2 * max(times["full_jitter"], times["decorrelated_jitter"])
    assert calls["full_jitter"] < calls["decorrelated_jitter"]
    assert calls["decorrelated_jitter"] <= 1.25 * calls["full_jitter"]
    assert times["decorrelated_jitter"] <= 1.35 * times["full_jitter"]
