"""The shared rules and typed records: one percentile, one retry-status rule, journal records and
summary rows that survive their trip to disk unchanged."""

from __future__ import annotations

import math

from harness.measure.metrics import percentile, percentiles
from simulator.api.errors import retryable_status


def test_percentile_is_nearest_rank_and_agrees_with_percentiles():
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 7.0, 8.0, 6.0, 10.0]
    assert percentile(values, 0.5) == 5.0
    assert percentile(values, 0.99) == 10.0
    assert percentile(values, 0.0) == 1.0
    assert percentile([4.0], 0.9) == 4.0
    assert math.isnan(percentile([], 0.5))
    table = percentiles(values)
    assert all(table[f"p{round(q * 100)}"] == percentile(values, q) for q in (0.1, 0.5, 0.9, 0.99))


def test_retryable_status_is_the_sdk_rule():
    assert [s for s in range(400, 600) if retryable_status(s)] == [408, 409, 429, *range(500, 600)]
