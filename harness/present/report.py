"""Results on disk: summary.json, summary.csv, PNG plots and a self-contained report.html; and
the summary table on the terminal."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.measure.metrics import SummaryRow

CSV_COLUMNS = (
    "scenario",
    "client",
    "skipped",
    "trials",
    "recovered",
    "recovery_rate",
    "recovery_ci_low",
    "recovery_ci_high",
    "faulted",
    "recovered_faulted",
    "hangs",
    "data_loss",
    "duplicated",
    "failed",
    "clear_errors",
    "backoff_ms_p50",
    "backoff_ms_p90",
    "time_to_recover_ms_p50",
    "amplification",
    "bytes_resent",
    "mean_elapsed_s",
    "decay",
)


def write_all(
    directory: Path,
    rows: Sequence[SummaryRow],
    meta: Mapping[str, Any],
    baseline: Mapping[str, Any] | None = None,
    records: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """Everything a run leaves besides trials.jsonl; returns the paths written. report.html is
    harness/present/report_html.py's page (matrix, scenarios, drill-downs; ``baseline``: a diff result);
    the PNG plots stay beside it for those who want image files."""
    paths = {
        "json": directory / "summary.json",
        "csv": directory / "summary.csv",
        "html": directory / "report.html",
    }
    paths["json"].write_text(json.dumps({"meta": dict(meta), "rows": [row.to_json() for row in rows]}, indent=2))
    write_csv(paths["csv"], rows)
    plots = make_plots(rows)
    for name, png in plots.items():
        target = directory / f"{name}.png"
        target.write_bytes(png)
        paths[name] = target
    paths["html"].write_text(render_page(directory, rows, meta, baseline, records), encoding="utf-8")
    return paths


def render_page(
    directory: Path,
    rows: Sequence[SummaryRow],
    meta: Mapping[str, Any],
    baseline: Mapping[str, Any] | None = None,
    records: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The report page; the trial records are read from ``directory`` unless given."""
    from harness.drive.runner import load_records, only_latest
    from harness.present import report_html

    if records is None:
        records = only_latest(load_records(directory)) if (directory / "trials.jsonl").exists() else []
    return report_html.render(rows, meta, records, directory, baseline)


def write_csv(path: Path, rows: Sequence[SummaryRow]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            ci: Sequence[float | None] = row.recovery_ci or (None, None)
            writer.writerow(
                [
                    row.scenario,
                    row.client,
                    row.skipped or "",
                    row.trials,
                    row.recovered,
                    _num(row.recovery_rate),
                    _num(ci[0]),
                    _num(ci[1]),
                    row.faulted,
                    row.recovered_faulted,
                    row.hangs,
                    row.data_loss,
                    row.duplicated,
                    row.failed,
                    row.clear_errors,
                    _num(row.backoff_ms.get("p50")),
                    _num(row.backoff_ms.get("p90")),
                    _num(row.time_to_recover_ms.get("p50")),
                    _num(row.amplification),
                    row.bytes_resent,
                    _num(row.mean_elapsed_s),
                    " ".join(f"{d['attempt']}:{d['recovered']}/{d['tried']}" for d in row.decay),
                ]
            )


def _num(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# -- plots ---------------------------------------------------------------------------------------


def make_plots(rows: Sequence[SummaryRow]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    plots: dict[str, bytes] = {}
    ran = [r for r in rows if r.trials]
    if not ran:
        return plots

    # Retry decay: attempt k's recovery among requests whose earlier attempts failed.
    with_retries: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    for row in ran:
        if any(d["attempt"] >= 2 for d in row.decay):  # the whole curve, from attempt 1
            with_retries.setdefault(row.scenario, []).append((row.client, row.decay))
    if with_retries:
        count = len(with_retries)
        columns = min(3, count)
        lines = (count + columns - 1) // columns
        figure, axes = plt.subplots(lines, columns, figsize=(5 * columns, 3.4 * lines), squeeze=False)
        for axis, (scenario, series) in zip(axes.flat, sorted(with_retries.items())):
            for client, points in series:
                xs = [p["attempt"] for p in points]
                ys = [p["rate"] for p in points]
                low = [max(0.0, p["rate"] - p["ci"][0]) for p in points]
                high = [max(0.0, p["ci"][1] - p["rate"]) for p in points]
                axis.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=client)
            axis.set_title(scenario, fontsize=9)
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # attempts are whole numbers
            axis.set_xlim(0.5, max(p["attempt"] for _, points in series for p in points) + 0.5)
            axis.set_xlabel("attempt k")
            axis.set_ylabel("recovered | 1..k-1 failed")
            axis.set_ylim(-0.05, 1.05)
            axis.legend(fontsize=7)
        for axis in list(axes.flat)[count:]:
            axis.axis("off")
        figure.tight_layout()
        plots["decay"] = _png(figure, plt)

    # Backoff the server measured between attempts, per client.
    samples: dict[str, list[SummaryRow]] = {}
    for row in ran:
        if row.backoff_ms.get("n"):
            samples.setdefault(row.client, []).append(row)
    # (percentiles only are kept in rows; the histogram uses their spread per scenario)
    if samples:
        figure, axis = plt.subplots(figsize=(8, 3.6))
        for client, items in sorted(samples.items()):
            # n > 0 for every row here, so no percentile is None
            p50 = [v for i in items if (v := i.backoff_ms["p50"]) is not None]
            p90 = [v for i in items if (v := i.backoff_ms["p90"]) is not None]
            axis.scatter(p50, [client] * len(p50), marker="o", label=f"{client} p50")
            axis.scatter(p90, [client] * len(p90), marker="x", label=f"{client} p90")
        axis.set_xscale("symlog", linthresh=10)
        axis.set_xlabel("backoff between attempts, ms (server-measured), per scenario")
        figure.tight_layout()
        plots["backoff"] = _png(figure, plt)

    # Outcomes per client over all scenarios.
    outcomes = ("recovered", "clean", "failed", "data_loss", "duplicated", "hung", "error")
    colours = {
        "recovered": "#2a9d8f",
        "clean": "#a8dadc",
        "failed": "#e9c46a",
        "data_loss": "#e76f51",
        "duplicated": "#9d4edd",
        "hung": "#264653",
        "error": "#888888",
    }
    clients = sorted({r.client for r in ran})
    figure, axis = plt.subplots(figsize=(max(6, 1.2 * len(clients)), 3.6))
    bottom = [0] * len(clients)
    for outcome in outcomes:
        values = [sum(r.outcomes.get(outcome, 0) for r in ran if r.client == c) for c in clients]
        axis.bar(clients, values, bottom=bottom, label=outcome, color=colours[outcome])
        bottom = [b + v for b, v in zip(bottom, values)]
    axis.set_ylabel("trials")
    axis.legend(fontsize=7, ncol=3)
    axis.tick_params(axis="x", labelrotation=20)
    figure.tight_layout()
    plots["outcomes"] = _png(figure, plt)
    return plots


def _png(figure: Any, plt: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


# -- HTML ----------------------------------------------------------------------------------------
