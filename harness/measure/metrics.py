"""Numbers from trial records: pure functions, no I/O.

Recovery is a proportion, so it is reported with a 95 % Wilson score interval (sound at small n
and near 0 or 1, unlike the normal approximation). Retry decay follows the field report's
definition: for attempt k, of the logical requests whose attempts 1..k-1 all failed, how many
succeeded on attempt k.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (``q`` in [0, 1]); NaN for an empty sample. The one
    percentile of the project: reports and benchmarks agree on what p99 means."""
    ordered = sorted(values)
    return _rank(ordered, q) if ordered else math.nan


def _rank(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def percentiles(values: Sequence[float], qs: Sequence[float] = (0.1, 0.5, 0.9, 0.99)) -> dict[str, float | None]:
    """Nearest-rank percentiles; None for an empty sample."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for q in qs:
        key = f"p{round(q * 100):d}"
        out[key] = _rank(ordered, q) if ordered else None
    out["max"] = ordered[-1] if ordered else None
    out["n"] = len(ordered)
    return out


def decay(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per attempt k >= 2: logical requests that reached attempt k after k-1 failures, and how
    many of them attempt k recovered. Attempt 1 is reported too (first-attempt success)."""
    tried: dict[int, int] = defaultdict(int)
    recovered: dict[int, int] = defaultdict(int)
    for record in records:
        for attempts in record.get("attempts", []):
            for k, attempt in enumerate(attempts, start=1):
                tried[k] += 1
                if attempt["ok"]:
                    recovered[k] += 1
                    break
    out = []
    for k in sorted(tried):
        lo, hi = wilson(recovered[k], tried[k])
        out.append({"attempt": k, "tried": tried[k], "recovered": recovered[k], "rate": recovered[k] / tried[k], "ci": [lo, hi]})
    return out


def summarize(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (scenario, client), in first-seen order."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    skipped: dict[tuple[str, str], str] = {}
    for record in records:
        key = (record["scenario"], record["client"])
        if record.get("skipped"):
            skipped[key] = record["skipped"]
            groups.setdefault(key, [])
            continue
        groups.setdefault(key, []).append(record)
    rows = []
    for (scenario, client), items in groups.items():
        rows.append(summarize_group(scenario, client, items, skipped.get((scenario, client))))
    return rows


def summarize_group(scenario: str, client: str, items: Sequence[Mapping[str, Any]], skipped: str | None = None) -> dict[str, Any]:
    n = len(items)
    outcome = defaultdict(int)
    for item in items:
        outcome[item["outcome"]] += 1
    recovered = outcome["recovered"] + outcome["clean"]
    faulted = [i for i in items if i.get("faults_fired")]
    recovered_faulted = sum(1 for i in faulted if i["outcome"] == "recovered")
    clear_errors = sum(1 for i in items if i["outcome"] == "failed" and i.get("error_line"))
    backoff = [gap for i in items for gap in i.get("backoff_ms", [])]
    ttr = [i["time_to_recover_ms"] for i in items if i.get("time_to_recover_ms") is not None]
    needed = sum(i.get("bytes_needed", 0) for i in items)
    sent = sum(i.get("bytes_out", 0) for i in items)
    return {
        "scenario": scenario,
        "client": client,
        "skipped": skipped,
        "trials": n,
        "recovered": recovered,
        "recovery_rate": recovered / n if n else None,
        "recovery_ci": list(wilson(recovered, n)) if n else None,
        "faulted": len(faulted),
        "recovered_faulted": recovered_faulted,
        "hangs": outcome["hung"],
        "data_loss": outcome["data_loss"] + outcome["duplicated"],
        "duplicated": outcome["duplicated"],
        "failed": outcome["failed"],
        "harness_errors": outcome["error"],
        "clear_errors": clear_errors,
        "outcomes": dict(outcome),
        "decay": decay(items),
        "backoff_ms": percentiles(backoff),
        "time_to_recover_ms": percentiles(ttr),
        "amplification": (sent / needed) if needed else None,
        "bytes_resent": max(0, sent - needed),
        "mean_elapsed_s": sum(i["elapsed_s"] for i in items) / n if n else None,
        "error_lines": sorted({i["error_line"] for i in items if i.get("error_line")})[:5],
        "keepalive": keepalive_seen(items),  # the network lab's socket audit: "on (15 s)" / "off"; None outside the lab
    }


def keepalive_seen(items: Sequence[Mapping[str, Any]]) -> str | None:
    """What the socket audit saw on the client's connections across trials ("on (60 s)", "off", both)."""
    labels = set()
    for item in items:
        seen = (item.get("extra") or {}).get("socket_audit") or {}
        if seen.get("keepalive") in (None, "unknown"):
            continue
        label = str(seen["keepalive"])
        if seen.get("user_timeout_ms"):
            label += f", user timeout {seen['user_timeout_ms'] / 1000:g} s"
        labels.add(label)
    return " / ".join(sorted(labels)) if labels else None
