"""``streamchaos compare``: the reference client with each retry strategy through scenarios.

Every (strategy, scenario) pair runs as an ordinary client through the ordinary runner (the
``ref-<strategy>`` adapters), so the records, journals, summary.json/csv and report.html are the
same as ``streamchaos run`` leaves. On top of those: a table per strategy and scenario (recovery
with its 95 % Wilson interval, hangs, data loss, mean time to recover, amplification), the same as
compare.json and compare.csv, and three plots beside the summary (compare_recovery.png,
compare_time_to_recover.png, compare_amplification.png).

Each scenario runs at its own time scale unless ``--time-scale`` overrides it, and the strategies'
durations (backoff, watchdog, hedge delay, throttle window) are scaled by the same factor, so a
scenario compressed 30 times meets strategies compressed alike.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.clients import registry
from harness.drive import runner
from harness.measure import metrics
from harness.measure.strategies import STRATEGIES
from harness.present import report
from harness.scenario import Scenario

PREFIX = "ref-"
DEFAULT_STRATEGIES = ("sdk-default", "full-jitter", "idle-watchdog", "resilient")
PLOTS = {
    "compare_recovery": "Recovery per strategy (95% Wilson interval)",
    "compare_time_to_recover": "Time to recover",
    "compare_amplification": "Amplification (bytes sent / bytes of one answer)",
}
CSV_COLUMNS = (
    "strategy",
    "scenario",
    "trials",
    "recovered",
    "recovery_rate",
    "recovery_ci_low",
    "recovery_ci_high",
    "hangs",
    "data_loss",
    "failed",
    "ttr_mean_ms",
    "ttr_p50_ms",
    "ttr_p90_ms",
    "amplification",
    "mean_elapsed_s",
)


@dataclass(frozen=True)
class CompareConfig:
    strategies: tuple[str, ...]
    scenarios: tuple[Scenario, ...]
    results_dir: Path = runner.RESULTS
    run_id: str = ""
    trials: int | None = None
    workers: int = max(2, os.cpu_count() or 2)
    time_scale: float | None = None
    http2: bool = False

    def __post_init__(self) -> None:
        unknown = [name for name in self.strategies if name not in STRATEGIES]
        if unknown:
            raise KeyError(f"unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}")
        if not self.strategies or not self.scenarios:
            raise ValueError("compare needs at least one strategy and one scenario")


def client_name(strategy: str, http2: bool = False) -> str:
    return f"{PREFIX}{strategy}{'-h2' if http2 else ''}"


def strategy_of(client: str) -> str:
    name = client[len(PREFIX) :] if client.startswith(PREFIX) else client
    return name[:-3] if name.endswith("-h2") and name[:-3] in STRATEGIES else name


def run(config: CompareConfig, on_update: Callable[[int, int, Any], None] | None = None) -> Path:
    """Run every strategy through every scenario into results/<run_id>; return that directory."""
    run_id = config.run_id or runner.new_run_id()
    total = sum(runner.trials_for(s, runner.RunConfig((s,), (), trials=config.trials)) for s in config.scenarios) * len(config.strategies)
    done = 0
    directory = config.results_dir / run_id
    for item in config.scenarios:
        scale = config.time_scale if config.time_scale is not None else item.time_scale
        clients = tuple(
            registry.reference_client(name, http2=config.http2, time_scale=scale, name=client_name(name, config.http2)) for name in config.strategies
        )
        base = done

        def update(progress: runner.Progress, record: Any, base: int = base) -> None:
            if on_update:
                on_update(base + progress.done, total, record)

        progress = runner.Progress(on_update=update)
        directory = runner.run(
            runner.RunConfig(
                scenarios=(item,),
                clients=clients,
                results_dir=config.results_dir,
                run_id=run_id,
                trials=config.trials,
                workers=config.workers,
                time_scale=config.time_scale,
            ),
            progress,
        )
        done = base + runner.trials_for(item, runner.RunConfig((item,), (), trials=config.trials)) * len(config.strategies)
    return directory


@dataclass(frozen=True, slots=True)
class StrategyRow(metrics.SummaryRow):
    """A reference client's summary row with its retry strategy and its times to recover (ms,
    over the trials that recovered in the end). Written to summary.json as a plain SummaryRow."""

    strategy: str = ""
    ttr_ms: tuple[float, ...] = ()
    ttr_mean_ms: float | None = None


def rows(records: Sequence[Mapping[str, Any]], strategies: Sequence[str] | None = None, scenarios: Sequence[str] | None = None) -> list[StrategyRow]:
    """metrics.summarize's rows for the reference clients, with the strategy and the mean time to
    recover added, ordered strategy by strategy, then scenario by scenario."""
    ours = [r for r in records if str(r["client"]).startswith(PREFIX)]
    out = []
    for row in metrics.summarize(ours):
        items = [r for r in ours if r["scenario"] == row.scenario and r["client"] == row.client and not r.get("skipped")]
        # only trials that recovered in the end: a hung trial's first recovery is not a recovery
        ttr = tuple(r["time_to_recover_ms"] for r in items if r["outcome"] == "recovered" and r.get("time_to_recover_ms") is not None)
        summary = {name: getattr(row, name) for name in metrics.SummaryRow.__dataclass_fields__}
        out.append(StrategyRow(**summary, strategy=strategy_of(row.client), ttr_ms=ttr, ttr_mean_ms=sum(ttr) / len(ttr) if ttr else None))
    strategy_order = {name: i for i, name in enumerate(strategies or [])}
    scenario_order = {name: i for i, name in enumerate(scenarios or [])}
    out.sort(key=lambda r: (strategy_order.get(r.strategy, len(strategy_order)), scenario_order.get(r.scenario, len(scenario_order))))
    return out


def write(directory: Path, table: Sequence[StrategyRow], meta: Mapping[str, Any]) -> dict[str, Path]:
    """The usual summary.json/csv/report.html, compare.json/csv and the comparison plots."""
    paths = report.write_all(directory, table, meta)
    paths["compare_json"] = directory / "compare.json"
    paths["compare_json"].write_text(json.dumps({"meta": dict(meta), "rows": [_compact(r) for r in table]}, indent=2))
    paths["compare_csv"] = directory / "compare.csv"
    with open(paths["compare_csv"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in table:
            writer.writerow([_cell(v) for v in _compact(row).values()])
    for name, png in plots(table).items():
        paths[name] = directory / f"{name}.png"
        paths[name].write_bytes(png)
    return paths


def _compact(row: StrategyRow) -> dict[str, Any]:
    ci: Sequence[float | None] = row.recovery_ci or (None, None)
    ttr = row.time_to_recover_ms or {}
    return {
        "strategy": row.strategy,
        "scenario": row.scenario,
        "trials": row.trials,
        "recovered": row.recovered,
        "recovery_rate": row.recovery_rate,
        "recovery_ci_low": ci[0],
        "recovery_ci_high": ci[1],
        "hangs": row.hangs,
        "data_loss": row.data_loss,
        "failed": row.failed,
        "ttr_mean_ms": row.ttr_mean_ms,
        "ttr_p50_ms": ttr.get("p50"),
        "ttr_p90_ms": ttr.get("p90"),
        "amplification": row.amplification,
        "mean_elapsed_s": row.mean_elapsed_s,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_table(table: Sequence[StrategyRow], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.width = max(console.width, 140)
    out = Table(title="streamchaos compare: retry strategies of the reference client")
    for column in ("strategy", "scenario", "n", "recovery [95% CI]", "hangs", "data loss", "mean time to recover*", "amplification"):
        out.add_column(column)
    audit = any(row.keepalive for row in table)  # network lab runs: the socket audit beside the outcome
    if audit:
        console.width = max(console.width, 180)
        out.add_column("faulted")
        out.add_column("keepalive (socket audit)")
    for row in table:
        if row.skipped:
            out.add_row(row.strategy, row.scenario, "-", f"skipped: {row.skipped[:50]}", "", "", "", "", *(["", ""] if audit else []))
            continue
        ci = row.recovery_ci  # set whenever a trial ran (a row that is not skipped)
        out.add_row(
            row.strategy,
            row.scenario,
            str(row.trials),
            "-" if ci is None else f"{row.recovery_rate:.0%} [{ci[0]:.0%}, {ci[1]:.0%}]",
            str(row.hangs),
            str(row.data_loss),
            "-" if row.ttr_mean_ms is None else f"{row.ttr_mean_ms:.0f} ms",
            "-" if row.amplification is None else f"{row.amplification:.2f}",
            *([f"{row.faulted}/{row.trials}", row.keepalive or ""] if audit else []),
        )
    console.print(out)
    console.print("* from the first fault to the answer, over the trials that recovered")


def plots(table: Sequence[StrategyRow]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ran = [r for r in table if r.trials]
    if not ran:
        return {}
    strategies = list(dict.fromkeys(r.strategy for r in ran))
    scenarios = list(dict.fromkeys(r.scenario for r in ran))
    cell = {(r.strategy, r.scenario): r for r in ran}
    width = 0.8 / len(strategies)
    out: dict[str, bytes] = {}

    def grouped(
        value: Callable[[StrategyRow], float | None],
        errors: Callable[[StrategyRow], Sequence[float]] | None,
        ylabel: str,
        title: str,
        points: Callable[[StrategyRow], list[float]] | None = None,
        ylim: tuple[float, float] | None = None,
    ) -> bytes:
        figure, axis = plt.subplots(figsize=(max(6.0, 1.6 * len(scenarios) * max(1, len(strategies)) / 2), 4.0))
        for i, strategy in enumerate(strategies):
            xs, ys, low, high = [], [], [], []
            for j, scenario in enumerate(scenarios):
                row = cell.get((strategy, scenario))
                y = value(row) if row is not None else None
                if row is None or y is None:
                    continue
                x = j - 0.4 + width * (i + 0.5)
                xs.append(x)
                ys.append(y)
                if errors:
                    lo, hi = errors(row)
                    low.append(max(0.0, y - lo))
                    high.append(max(0.0, hi - y))
                if points:
                    values = points(row)
                    axis.scatter([x] * len(values), values, s=8, color="black", alpha=0.5, zorder=3)
            axis.bar(xs, ys, width=width * 0.95, label=strategy)
            if errors and xs:
                axis.errorbar(xs, ys, yerr=[low, high], fmt="none", ecolor="black", capsize=3, zorder=4)
        axis.set_xticks(range(len(scenarios)), scenarios, rotation=10, fontsize=8)
        axis.set_ylabel(ylabel)
        axis.set_title(title, fontsize=10)
        if ylim:
            axis.set_ylim(*ylim)
        axis.legend(fontsize=7, ncol=min(5, len(strategies)), loc="upper center", bbox_to_anchor=(0.5, -0.14))
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        return buffer.getvalue()

    out["compare_recovery"] = grouped(
        # recovery_ci is set wherever recovery_rate is (trials ran); (0, 1) is the interval of no trial
        lambda r: r.recovery_rate,
        lambda r: r.recovery_ci or (0.0, 1.0),
        "recovered share of trials",
        PLOTS["compare_recovery"],
        ylim=(0, 1.05),
    )
    out["compare_time_to_recover"] = grouped(
        lambda r: r.ttr_mean_ms,
        None,
        "ms, first fault to the answer\n(recovered trials: mean; dots: each)",
        PLOTS["compare_time_to_recover"],
        points=lambda r: list(r.ttr_ms),
    )
    out["compare_amplification"] = grouped(lambda r: r.amplification, None, "bytes sent / bytes of one answer", PLOTS["compare_amplification"])
    return out


def command(args: Any) -> int:
    """The CLI: ``streamchaos compare --strategies ... --scenarios ...``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    from harness.scenario import ScenarioError, find, load

    console = Console(stderr=True)
    try:
        scenarios = tuple(load(find(name)) for name in args.scenarios)
        config = CompareConfig(
            strategies=tuple(args.strategies or DEFAULT_STRATEGIES),
            scenarios=scenarios,
            results_dir=args.results or runner.RESULTS,
            run_id=args.run_id or runner.new_run_id(),
            trials=args.trials,
            workers=args.workers or max(2, os.cpu_count() or 2),
            time_scale=args.time_scale,
            http2=bool(getattr(args, "http2", False)),
        )
    except (ScenarioError, KeyError, ValueError) as error:
        console.print(f"[red]streamchaos compare:[/red] {error}")
        return 2
    with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("trials", total=None)

        def update(done: int, total: int, record: Any) -> None:
            label = f"{record.scenario} / {record.client}: {record.outcome}" if record else ""
            bar.update(task, total=total, completed=done, description=label[:70])

        try:
            directory = run(config, update)
        except KeyboardInterrupt:
            console.print(
                f"[yellow]interrupted[/yellow]: recorded trials are in {config.results_dir / config.run_id}; resume with --run-id {config.run_id}"
            )
            return 130
    records = runner.only_latest(runner.load_records(directory))
    table = rows(records, config.strategies, [s.name for s in scenarios])
    meta = {
        "run_id": directory.name,
        "strategies": ", ".join(config.strategies),
        "scenarios": ", ".join(s.name for s in scenarios),
        "time scale": "each scenario's" if config.time_scale is None else config.time_scale,
        "trials recorded": len([r for r in records if not r.get("skipped")]),
    }
    paths = write(directory, table, meta)
    print_table(table)
    console.print("results: " + ", ".join(str(paths[k]) for k in ("compare_csv", "json", "html", *PLOTS) if k in paths))
    return 0
