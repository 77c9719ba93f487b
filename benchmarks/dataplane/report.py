"""The printed results: the table, the targets, the per-event comparison, the source it ran from."""

from __future__ import annotations

import subprocess

from .cells import Cell
from .common import PROTOCOL_TITLES, PROTOCOLS, ROOT, TARGET_RATIO, TARGETS


def table(cells: list[Cell]) -> str:
    reference = {c.protocol: c.median.answers_per_s for c in cells if c.server == "hypercorn" and c.status == "ok" and c.median}
    reference_cpu = {c.protocol: c.median.answers_per_cpu_s for c in cells if c.server == "hypercorn" and c.status == "ok" and c.median}
    header = (
        "server",
        "protocol",
        "answers/s",
        "events/s",
        "p50 ms",
        "p99 ms",
        "CPU s/1k ans",
        "ans/CPU-s",
        "CPU util",
        "core0 other",
        "B/event",
        "vs hypercorn",
        "status",
    )
    rows = []
    for c in cells:
        if c.median is None:
            rows.append((c.title, PROTOCOL_TITLES[c.protocol], *["-"] * (len(header) - 3), f"n/a: {c.reason}"))
            continue
        m = c.median
        ratio = "-"
        if c.protocol in reference and c.server != "hypercorn":
            ratio = f"{m.answers_per_s / reference[c.protocol]:.2f}x ({m.answers_per_cpu_s / reference_cpu[c.protocol]:.2f}x cpu)"
        status = "ok" if c.status == "ok" else f"INVALID: {c.reason}"
        if c.status == "ok" and c.reason:
            status = "ok*"
        rows.append(
            (
                c.title,
                PROTOCOL_TITLES[c.protocol],
                f"{m.answers_per_s:,.0f}",
                f"{m.events_per_s:,.0f}",
                f"{m.p50_ms:.1f}",
                f"{m.p99_ms:.1f}",
                f"{m.cpu_s_per_1000:.2f}",
                f"{m.answers_per_cpu_s:,.0f}",
                f"{m.cpu_util:.0%}",
                f"{m.core0_other:.0%}",
                f"{c.check.mean_event_bytes:.0f}" if c.check else "-",
                ratio,
                status,
            )
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, None, *rows]:
        if row is None:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 6)
            continue
        lines.append(" | ".join(str(v).rjust(w) if i >= 2 else str(v).ljust(w) for i, (v, w) in enumerate(zip(row, widths))) + " | " + row[-1])
    return "\n".join(lines)


def targets(cells: list[Cell]) -> list[str]:
    by = {(c.server, c.protocol): c for c in cells}
    lines = []
    for protocol in PROTOCOLS:
        ours = by.get(("streamchaos", protocol))
        ref = by.get(("hypercorn", protocol))
        if ours is None or ours.status != "ok":
            if ours is not None:
                lines.append(f"  {PROTOCOL_TITLES[protocol]:9} streamchaos not measured validly: {ours.status} {ours.reason}")
            continue
        rate, capacity = ours.median.answers_per_s, ours.median.answers_per_cpu_s
        if protocol in TARGETS:
            want = TARGETS[protocol]
            lines.append(
                f"  {PROTOCOL_TITLES[protocol]:9} {rate:8,.0f} answers/s measured       >= {want:,.0f}  {'PASS' if rate >= want else 'FAIL'}"
                f"   | {capacity:8,.0f} answers per CPU-second  {'PASS' if capacity >= want else 'FAIL'}"
            )
        if ref is not None and ref.status == "ok":
            ratio = rate / ref.median.answers_per_s
            cpu_ratio = capacity / ref.median.answers_per_cpu_s
            lines.append(
                f"  {PROTOCOL_TITLES[protocol]:9} {ratio:8.2f}x hypercorn (answers/s) >= {TARGET_RATIO}x "
                f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}"
                f"   | {cpu_ratio:8.2f}x hypercorn (per CPU-second)  {'PASS' if cpu_ratio >= TARGET_RATIO else 'FAIL'}"
            )
    return lines


def per_event_lines(cells: list[Cell]) -> list[str]:
    """streamchaos --frame-per-event against hypercorn (one ASGI body per event) and against our own
    coalesced path, per protocol, in answers per CPU-second (the figure a loaded machine distorts least)."""
    by = {(c.server, c.protocol): c for c in cells if c.status == "ok" and c.median}
    lines = []
    for protocol in PROTOCOLS:
        fpe = by.get(("streamchaos-fpe", protocol))
        if fpe is None:
            continue
        parts = [f"  {PROTOCOL_TITLES[protocol]:9} frame-per-event {fpe.median.answers_per_cpu_s:8,.0f} answers/CPU-s"]
        ref = by.get(("hypercorn", protocol))
        if ref is not None:
            ratio = fpe.median.answers_per_cpu_s / ref.median.answers_per_cpu_s
            parts.append(
                f"{ratio:5.2f}x hypercorn (target >= {TARGET_RATIO}x {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}; "
                f"{fpe.median.answers_per_s / ref.median.answers_per_s:.2f}x in answers/s)"
            )
        coalesced = by.get(("streamchaos", protocol))
        if coalesced is not None:
            parts.append(f"{fpe.median.answers_per_cpu_s / coalesced.median.answers_per_cpu_s:5.2f}x our coalesced path")
        lines.append(" | ".join(parts))
    return lines


def source_state() -> str:
    """The commit the simulator was run from, and whether simulator/ or harness/ had local changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "simulator", "harness"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return f"{commit or 'unknown'}{' + local changes in ' + str(len(dirty.splitlines())) + ' file(s)' if dirty.strip() else ''}"
