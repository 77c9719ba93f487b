"""Numbers from trial records: pure functions, no I/O; and the summary row they make per cell.

Recovery is a proportion, so it is reported with a 95 % Wilson score interval (sound at small n
and near 0 or 1, unlike the normal approximation). Retry decay follows the field report's
definition: for attempt k, of the logical requests whose attempts 1..k-1 all failed, how many
succeeded on attempt k.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

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


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One (scenario, client) cell of summary.json / summary.csv: what report, gate, compare and
    diff read. Field names are summary.json's keys; counts are trials unless named otherwise."""

    scenario: str
    client: str
    skipped: str | None  # why the cell did not run (then trials is 0)
    trials: int
    recovered: int  # trials that ended recovered or clean
    recovery_rate: float | None
    recovery_ci: list[float] | None  # 95 % Wilson interval of recovery_rate
    faulted: int  # trials in which a fault fired
    recovered_faulted: int
    hangs: int
    data_loss: int  # lost or duplicated data
    duplicated: int
    failed: int
    harness_errors: int
    clear_errors: int  # failed with an error line the user can act on
    outcomes: dict[str, int]
    decay: list[dict[str, Any]]  # per attempt k: tried, recovered, rate, ci (see decay)
    backoff_ms: dict[str, float | None]  # percentiles of the gaps between attempts
    time_to_recover_ms: dict[str, float | None]
    amplification: float | None  # bytes sent / bytes needed
    bytes_resent: int
    mean_elapsed_s: float | None
    error_lines: list[str]  # up to five distinct ones
    keepalive: str | None  # the network lab's socket audit: "on (15 s)" / "off"; None outside the lab
    field: list[dict[str, Any]] | None = None  # field-report matches, added by versions_report

    def to_json(self) -> dict[str, Any]:
        """summary.json's object for the row (``field`` only when the field checks ran)."""
        out = {name: getattr(self, name) for name in _ROW_KEYS}
        if self.field is None:
            del out["field"]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SummaryRow:
        return cls(**{name: data[name] for name in _ROW_KEYS if name in data})

    # Read-only item access, for readers written against summary.json's objects.
    def __getitem__(self, name: str) -> Any:
        if name not in _field_names(type(self)) or (name == "field" and self.field is None):
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name) if name in _field_names(type(self)) else default


_ROW_KEYS = tuple(f.name for f in fields(SummaryRow))
_FIELD_NAMES: dict[type, frozenset[str]] = {}  # per row class: SummaryRow, and subclasses such as compare.StrategyRow


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return names


def summarize(records: Sequence[Mapping[str, Any]]) -> list[SummaryRow]:
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
    return [summarize_group(scenario, client, items, skipped.get((scenario, client))) for (scenario, client), items in groups.items()]


def summarize_group(scenario: str, client: str, items: Sequence[Mapping[str, Any]], skipped: str | None = None) -> SummaryRow:
    """The row of one cell from its trial records: the one place a SummaryRow is built."""
    n = len(items)
    outcome: dict[str, int] = defaultdict(int)
    for item in items:
        outcome[item["outcome"]] += 1
    recovered = outcome["recovered"] + outcome["clean"]
    faulted = [i for i in items if i.get("faults_fired")]
    backoff = [gap for i in items for gap in i.get("backoff_ms", [])]
    ttr = [i["time_to_recover_ms"] for i in items if i.get("time_to_recover_ms") is not None]
    needed = sum(i.get("bytes_needed", 0) for i in items)
    sent = sum(i.get("bytes_out", 0) for i in items)
    return SummaryRow(
        scenario=scenario,
        client=client,
        skipped=skipped,
        trials=n,
        recovered=recovered,
        recovery_rate=recovered / n if n else None,
        recovery_ci=list(wilson(recovered, n)) if n else None,
        faulted=len(faulted),
        recovered_faulted=sum(1 for i in faulted if i["outcome"] == "recovered"),
        hangs=outcome["hung"],
        data_loss=outcome["data_loss"] + outcome["duplicated"],
        duplicated=outcome["duplicated"],
        failed=outcome["failed"],
        harness_errors=outcome["error"],
        clear_errors=sum(1 for i in items if i["outcome"] == "failed" and i.get("error_line")),
        outcomes=dict(outcome),
        decay=decay(items),
        backoff_ms=percentiles(backoff),
        time_to_recover_ms=percentiles(ttr),
        amplification=(sent / needed) if needed else None,
        bytes_resent=max(0, sent - needed),
        mean_elapsed_s=sum(i["elapsed_s"] for i in items) / n if n else None,
        error_lines=sorted({i["error_line"] for i in items if i.get("error_line")})[:5],
        keepalive=keepalive_seen(items),
    )


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
