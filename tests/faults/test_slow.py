"""slow on the wire: jitter spreads the token intervals around the same mean."""

from __future__ import annotations

from itertools import pairwise

from tests.faults.client import SEED, body, exchange, records


def write_gaps(request) -> list[float]:
    writes = request["writes"]
    return [b[2] - a[2] for a, b in pairwise(writes)]


def test_slow_jitter_spreads_the_token_intervals(sim, plan):
    plan({"type": "slow", "tokens_per_second": 50, "jitter": 0.9}, seed=SEED)
    exchange(sim, "jitter", body(30, content="jitter"))
    plan({"type": "slow", "tokens_per_second": 50}, seed=SEED)
    exchange(sim, "steady", body(30, content="jitter"))  # the same answer, so the same base intervals
    jittered, steady = write_gaps(records(sim, "jitter")[0]), write_gaps(records(sim, "steady")[0])
    assert len(jittered) == len(steady) > 20
    # One run, a ratio per interval: jitter 0.9 scales each by a keyed draw in [0.1, 1.9]; without
    # it the ratio is 1 plus scheduling noise (milliseconds against 20-60 ms intervals).
    ratios = sorted(j / s for j, s in zip(jittered, steady) if s > 0.01)
    spread = ratios[int(len(ratios) * 0.9)] - ratios[int(len(ratios) * 0.1)]
    assert spread > 0.6, ratios
    assert 0.6 < sum(ratios) / len(ratios) < 1.4, ratios  # around the same mean, not an added delay
